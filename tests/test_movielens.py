"""Real data: MovieLens-100k, fastbook chapter 8's recipe, fastcf's models against fastai's own on the same split.

The four fits (fastcf and fastai × dot and NN) are independent, so they run two at a time in worker processes with one torch
thread each: on 2 cores that halves the wall time of this, the slowest test."""
import multiprocessing as mp
import warnings
from concurrent.futures import ProcessPoolExecutor
import pytest

pytestmark = pytest.mark.slow          # four trainings on MovieLens-100k: outside the quick tier

RECIPE = dict(dot=dict(n_factors=50), nn=dict(use_nn=True, layers=[100, 50]))
LIMITS = dict(dot=0.86, nn=0.90)


def _fit(library, kind, path):
    "Valid MSE after fastbook's recipe, for `library` in ('fastcf', 'fastai') and `kind` in ('dot', 'nn')"
    warnings.filterwarnings('ignore')
    import torch
    torch.set_num_threads(1)
    from fastai.collab import CollabDataLoaders
    from fastai.torch_core import set_seed
    from fastcf.data import movielens_100k
    if library == 'fastcf': from fastcf.learner import collab_learner
    else: from fastai.collab import collab_learner
    ratings = movielens_100k(path)
    set_seed(42, reproducible=True)
    dls = CollabDataLoaders.from_df(ratings, user_name='user', item_name='movie', rating_name='rating', bs=64, seed=42)
    learn = collab_learner(dls, y_range=(0, 5.5), **RECIPE[kind])
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(5, 5e-3, wd=0.1)
    return float(learn.recorder.values[-1][1]), type(learn.model).__module__


@pytest.fixture(scope='module')
def results(ml100k_path):
    jobs = [(lib, kind) for kind in RECIPE for lib in ('fastcf', 'fastai')]
    with ProcessPoolExecutor(2, mp_context=mp.get_context('spawn')) as pool:
        futures = {job: pool.submit(_fit, *job, ml100k_path) for job in jobs}
        return {job: f.result() for job, f in futures.items()}


@pytest.mark.parametrize('kind', ['dot', 'nn'])
def test_movielens_100k_valid_mse(results, kind):
    ours, module = results[('fastcf', kind)]
    theirs, _ = results[('fastai', kind)]
    print(f"ML-100k {kind}: fastcf valid MSE {ours:.4f}, fastai {theirs:.4f}")
    assert module == 'fastcf.models'
    assert ours <= LIMITS[kind]
    assert abs(ours - theirs) <= 0.01
