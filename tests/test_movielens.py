"""Real data: MovieLens-100k, fastbook chapter 8's recipe, fastcf's models against fastai's own on the same split."""
import warnings
import numpy as np, pytest, torch

warnings.filterwarnings('ignore', category=UserWarning)


def _fit(make, ratings, **kw):
    from fastai.collab import CollabDataLoaders
    from fastai.torch_core import set_seed
    set_seed(42, reproducible=True)
    dls = CollabDataLoaders.from_df(ratings, user_name='user', item_name='movie', rating_name='rating', bs=64, seed=42)
    learn = make(dls, y_range=(0, 5.5), **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(5, 5e-3, wd=0.1)
    return float(learn.recorder.values[-1][1]), learn


@pytest.mark.parametrize('kind,kw,limit', [('dot', dict(n_factors=50), 0.86),
                                           ('nn', dict(use_nn=True, layers=[100, 50]), 0.90)])
def test_movielens_100k_valid_mse(ml100k, kind, kw, limit):
    import fastai.collab
    from fastcf.learner import collab_learner
    torch.set_num_threads(2)
    ours, learn = _fit(collab_learner, ml100k, **kw)
    theirs, _ = _fit(fastai.collab.collab_learner, ml100k, **kw)
    print(f"ML-100k {kind}: fastcf valid MSE {ours:.4f}, fastai {theirs:.4f}")
    assert type(learn.model).__module__ == 'fastcf.models'
    assert ours <= limit
    assert abs(ours - theirs) <= 0.01
