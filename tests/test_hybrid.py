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


def _planted(seed=0, n_users=60, n_items=40, n_feats=8):
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.4)
    feats = (rng.random((n_items, n_feats)) < 0.3).astype(np.float32)
    ratings = pd.DataFrame({'user': users, 'item': items, 'rating': rng.uniform(1, 5, len(users)).astype(np.float32)})
    return ratings, pd.DataFrame(feats, index=np.arange(n_items), columns=[f'f{j}' for j in range(n_feats)])


def _fit(ratings, item_features, **kwargs):
    import torch
    from fastcf.hybrid import HybridDataLoaders, hybrid_learner
    torch.manual_seed(0)
    dls = HybridDataLoaders.from_df(ratings, item_features=item_features, valid_pct=0.1, seed=1, bs=64, device='cpu',
                                    **{k: kwargs.pop(k) for k in ('fast',) if k in kwargs})
    learn = hybrid_learner(dls, n_factors=4, y_range=(0.5, 5.5), identity_drop=0.3, **kwargs)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-2, wd=0.05)
    return learn


def test_fast_path_is_the_default():
    from fastcf.tensordata import TensorDataLoaders
    from fastcf.sparse import LazyAdam
    ratings, feats = _planted()
    learn = _fit(ratings, feats)
    assert isinstance(learn.dls, TensorDataLoaders) and isinstance(learn.opt, LazyAdam)
    assert learn.model.i_weight.sparse and learn.model.i_feat.bag.sparse
    dense = _fit(ratings, feats, fast=False, sparse=False)
    assert not isinstance(dense.dls, TensorDataLoaders) and type(dense.opt).__name__ == 'Optimizer'   # fastai's DataLoaders, dense Adam
    assert not dense.model.i_feat.bag.sparse


def test_sparse_features_train_as_dense_on_the_fast_path():
    sp = pytest.importorskip('scipy.sparse')
    ratings, feats = _planted(1)
    a = _fit(ratings, feats)
    b = _fit(ratings, (sp.csr_matrix(feats.to_numpy()), feats.index.to_numpy(), list(feats.columns)))
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=0, atol=1e-6, err_msg=name)
