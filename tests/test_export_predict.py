"""Export and predictor against real fastai Learners: string IDs, validation-only integer IDs, load_learner, and rankings
equal to get_preds on the full cartesian DataFrame. Learners are trained once per module (`trained`, on string IDs) and
shared: five trainings in all (dot and NN × fastcf and fastai, and one with validation-only users)."""
import os, warnings
import numpy as np, pandas as pd, pytest, torch

warnings.filterwarnings('ignore', category=UserWarning)
from fastai.collab import CollabDataLoaders, collab_learner as fastai_collab_learner
from fastai.learner import load_learner
from fastai.torch_core import set_seed
from fastcf.data import synthetic_ratings
from fastcf.export import CollabExport, from_learner
from fastcf.learner import collab_learner
from fastcf.predict import predict, recommend
from fastcf.testing import check_ranking_frame
from conftest import dense_reference

pytestmark = pytest.mark.slow          # five fastai trainings and an exhaustive selection check: outside the quick tier


def _learner(ratings, kind, make=collab_learner, epochs=2):
    set_seed(0, reproducible=True)
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=0)
    kw = dict(use_nn=True, layers=[20, 10]) if kind == 'nn' else dict(n_factors=8)
    learn = make(dls, y_range=(0, 5.5), **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 5e-3, wd=0.1)
    return learn


def _get_preds(learn, df):
    with learn.no_bar(): preds, _ = learn.get_preds(dl=learn.dls.test_dl(df))
    return preds.reshape(-1).numpy()


@pytest.fixture(scope='module')
def ratings():
    "The small synthetic ratings with string IDs ('user-0', 'item-0', …), the kind of IDs most likely to go wrong"
    r = synthetic_ratings()
    return r.assign(user=r.user.map(lambda u: f"user-{u}"), item=r.item.map(lambda i: f"item-{i}"))


@pytest.fixture(scope='module')
def trained(ratings):
    "Learners on `ratings`, trained once per (kind, library) for the whole module (each test reads them, none changes them)"
    cache = {}
    def get(kind, make=collab_learner):
        if (kind, make) not in cache: cache[kind, make] = _learner(ratings, kind, make, epochs=3)
        return cache[kind, make]
    return get


@pytest.mark.parametrize('kind', ['dot', 'nn'])
@pytest.mark.parametrize('make', [collab_learner, fastai_collab_learner], ids=['fastcf', 'fastai'])
def test_string_ids_reproduce_get_preds(ratings, trained, kind, make):
    learn = trained(kind, make)
    exp = from_learner(learn)
    assert exp.kind == kind and exp.users.id_type == 'str' and exp.user_ids[0] == 'user-0'
    pairs = ratings.sample(2000, random_state=0)[['user', 'item']]
    np.testing.assert_allclose(predict(exp, pairs), _get_preds(learn, pairs), atol=1e-5)


def test_validation_only_integer_users_are_not_invented():
    ratings = synthetic_ratings()
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=0)
    valid_rows = dls.valid.items.index[:15]
    ratings.loc[valid_rows, 'user'] = np.arange(5000, 5015)       # one rating each, all in the validation split
    learn = _learner(ratings, 'dot')
    exp = from_learner(learn)
    assert not set(range(5000, 5015)) & set(exp.user_ids.tolist())
    assert len(exp.user_ids) == ratings.user.nunique() - 15
    with pytest.raises(KeyError, match=r"5000.*'#na#'"):
        predict(exp, pd.DataFrame({'user': [5000], 'item': [3]}))
    assert np.isnan(predict(exp, pd.DataFrame({'user': [5000], 'item': [3]}), unknown='mask')[0])
    known = ratings[~ratings.user.between(5000, 5014)].sample(1000, random_state=1)[['user', 'item']]
    np.testing.assert_allclose(predict(exp, known), _get_preds(learn, known), atol=1e-5)


@pytest.mark.parametrize('kind', ['dot', 'nn'])
def test_load_learner_roundtrip(tmp_path, ratings, trained, kind):
    learn = trained(kind)
    learn.export(tmp_path / 'learner.pkl')          # an absolute name: the shared Learner's path stays as it is
    restored = load_learner(tmp_path / 'learner.pkl')
    exp = from_learner(restored)
    assert exp.user_counts is None                                 # load_learner keeps no training data
    pairs = ratings.sample(500, random_state=2)[['user', 'item']]
    np.testing.assert_allclose(predict(exp, pairs), _get_preds(learn, pairs), atol=1e-5)
    np.testing.assert_array_equal(exp.item_factors, from_learner(learn).item_factors)


@pytest.mark.parametrize('kind', ['dot', 'nn'])
def test_rankings_equal_get_preds_on_full_cartesian(trained, kind):
    learn = trained(kind)
    exp = from_learner(learn)
    users, items = exp.user_ids, exp.item_ids
    cart = pd.DataFrame({'user': np.repeat(users, len(items)), 'item': np.tile(items, len(users))})
    scores = _get_preds(learn, cart).reshape(len(users), len(items))
    scores = pd.DataFrame(scores, users, items)
    # fastai's scores are the reference: same items up to near-ties (within float error), never a different ranking
    check_ranking_frame(recommend(exp, k=10, device='cpu'), scores, 10, eps=1e-5)


def test_save_is_atomic(tmp_path, monkeypatch, trained):
    exp = from_learner(trained('dot'))
    target = tmp_path / 'model.fcf'
    exp.save(target)
    before = target.read_bytes()
    real = np.lib.format.write_array
    calls = []
    def crash_after_two(*a, **kw):
        calls.append(1)
        if len(calls) > 2: raise OSError('disk full (simulated)')
        return real(*a, **kw)
    monkeypatch.setattr(np.lib.format, 'write_array', crash_after_two)
    with pytest.raises(OSError, match='disk full'): exp.save(target)
    monkeypatch.setattr(np.lib.format, 'write_array', real)
    assert target.read_bytes() == before                            # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.fcf']   # and no temporary file is left
    calls.clear()
    monkeypatch.setattr(np.lib.format, 'write_array', crash_after_two)
    with pytest.raises(OSError): exp.save(tmp_path / 'new.fcf')
    assert not (tmp_path / 'new.fcf').exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('kind', ['dot', 'nn'])
def test_cuda_matches_cpu(kind):
    from fastcf.testing import random_export
    exp = random_export(n_users=3000, n_items=5000, n_factors=32, kind=kind, seed=1)
    seen = pd.DataFrame({'user': np.random.default_rng(0).integers(0, 3000, 20000), 'item': np.random.default_rng(1).integers(0, 5000, 20000)})
    keys, scores = dense_reference(exp, exclude=seen)
    for device in ('cpu', 'cuda'):                           # each device against the float64 reference, not each other
        check_ranking_frame(recommend(exp, k=50, exclude=seen, device=device), keys, 50, ref_scores=scores)


@pytest.mark.parametrize('n_threads', [1, 2, 3])
def test_topk_selection_matches_stable_sort(n_threads):
    "The CPU selection (one- and two-stage, split over threads) equals a stable sort, on random shapes full of ties"
    from fastcf.topk import _topk_numpy_threads, INVALID
    rng = np.random.default_rng(n_threads)
    for trial in range(150):
        k, block = int(rng.integers(1, 12)), int(rng.choice([0, 4, 8, 32, 64]))
        n_rows, n_cols = int(rng.integers(1, 300)), (block or 8) * int(rng.integers(4 * k, 4 * k + 30))
        keys = rng.integers(0, int(rng.choice([3, 10, 1000, 10**6])), (n_rows, n_cols)).astype(np.float32)
        if rng.random() < .3: keys[rng.random(keys.shape) < .5] = -np.inf           # excluded pairs
        order = np.argsort(-keys, axis=1, kind='stable')[:, :k]
        ref = np.take_along_axis(keys, order, 1)
        ref[ref <= INVALID] = -np.inf
        vals, cols = _topk_numpy_threads(keys, k, block, n_threads, min_rows=16)
        np.testing.assert_array_equal(vals, ref, err_msg=f"trial {trial}")
        valid = ref > -np.inf
        np.testing.assert_array_equal(cols[valid], order[valid], err_msg=f"trial {trial}")
