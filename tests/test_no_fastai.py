"""The serving side (models, export, predict) must import and run where fastai is not installed."""
import subprocess, sys, textwrap

BLOCK = textwrap.dedent('''
    import sys, importlib.abc
    class _NoFastai(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == 'fastai' or name.startswith('fastai.'): raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
    sys.meta_path.insert(0, _NoFastai())
''')


def _run(code):
    res = subprocess.run([sys.executable, '-c', BLOCK + textwrap.dedent(code)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_block_really_blocks():
    res = subprocess.run([sys.executable, '-c', BLOCK + 'import fastai.collab'], capture_output=True, text=True)
    assert res.returncode != 0 and 'blocked' in res.stderr


def test_models_without_fastai():
    out = _run('''
        import torch
        from fastcf.models import EmbeddingDotBias, EmbeddingNN
        from fastcf.vocab import Vocab
        m = EmbeddingDotBias.from_classes(4, {'u': ['#na#', 1, 2], 'i': ['#na#', 'a', 'b']}, y_range=(0, 5))
        x = torch.tensor([[1, 2], [2, 1]])
        assert m(x).shape == (2,)
        assert m.weight(['a']).shape == (1, 4)
        n = EmbeddingNN([(3, 4), (3, 2)], [8])
        assert n(x).shape == (2, 1)
        print('fastai' in sys.modules)
    ''')
    assert out.strip() == 'False'


def test_export_and_predict_without_fastai(tmp_path):
    out = _run(f'''
        import numpy as np, torch
        from fastcf.models import EmbeddingDotBias
        from fastcf.export import CollabExport
        import fastcf.predict
        m = EmbeddingDotBias.from_classes(4, {{'u': ['#na#', 1, 2], 'i': ['#na#', 'a', 'b']}}, y_range=(0, 5))
        e = CollabExport.from_model(m, m.classes)
        e.save({str(tmp_path / 'm.fcf')!r})
        e2 = CollabExport.load({str(tmp_path / 'm.fcf')!r})
        assert np.array_equal(e2.item_factors, e.item_factors)
        print('fastai' in sys.modules)
    ''')
    assert out.strip() == 'False'
