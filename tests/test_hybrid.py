"""Hybrid exports on the serving side: load and add_items where fastai is blocked; sparse and dense features agree."""
import subprocess, sys, textwrap
import numpy as np, pandas as pd, pytest
from test_no_fastai import BLOCK


def _hybrid_file(tmp_path):
    from fastcf.export import CollabExport
    from fastcf.features import SideFeatures
    from fastcf.vocab import Vocab
    rng = np.random.default_rng(0)
    exp = CollabExport('dot', 'user', 'item', Vocab(['u1', 'u2'], 1), Vocab([10, 20], 1), rng.normal(size=(3, 4)),
                       rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=3), y_range=(0, 5),
                       item_features=SideFeatures([f'bit{j}' for j in range(6)], rng.normal(size=(6, 4)), rng.normal(size=6)))
    return exp.save(tmp_path / 'hybrid.fcf')


def test_add_items_without_fastai(tmp_path):
    path = _hybrid_file(tmp_path)
    code = BLOCK + textwrap.dedent(f'''
        import numpy as np, pandas as pd
        from fastcf.export import CollabExport
        from fastcf.predict import recommend
        exp = CollabExport.load({str(path)!r})
        new = exp.add_items(pd.DataFrame(np.eye(6)[:2], index=[30, 40], columns=[f'bit{{j}}' for j in range(6)]))
        recs = recommend(new, k=2, progress=False)
        print(sorted(new.item_ids.tolist()), len(recs), 'fastai' in sys.modules)
    ''')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split('\n')[-2] == '[10, 20, 30, 40] 4 False'


def test_sparse_features_equal_dense(tmp_path):
    sp = pytest.importorskip('scipy.sparse')
    from fastcf.export import CollabExport
    exp = CollabExport.load(_hybrid_file(tmp_path))
    rng = np.random.default_rng(1)
    dense = (rng.random((50, 6)) < 0.3) * rng.random((50, 6))
    ids = np.arange(100, 150)
    a = exp.add_items(pd.DataFrame(dense, index=ids, columns=[f'bit{j}' for j in range(6)]))
    b = exp.add_items((sp.csr_matrix(dense), ids, [f'bit{j}' for j in range(6)]))
    np.testing.assert_allclose(a.item_factors, b.item_factors, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.item_bias, b.item_bias, rtol=0, atol=1e-6)
