"Implicit feedback on real MovieLens-100k (rating >= 4 is a positive): sampler, training, metrics, export and ranking."
import numpy as np, pandas as pd, pytest, torch
from fastai.torch_core import set_seed
from fastcf.implicit import ImplicitDataLoaders, implicit_learner, evaluate_implicit, train_implicit
from fastcf.implicit_data import ImplicitDataError, NegativeSampler
from fastcf.vocab import MissingColumnError
from fastcf.evaluate import popularity_recs
from fastcf.export import from_learner, CollabExport
from fastcf.predict import recommend
from fastcf.evaluate import ranking_metrics, split_by_user
from fastcf.testing import check_ranking_frame
from conftest import dense_reference

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def positives(ml100k):
    return ml100k.loc[ml100k.rating >= 4, ['user', 'movie']].reset_index(drop=True)


@pytest.fixture(scope='module')
def trained(positives):
    "BPR on ML-100k positives, leave-2-out per user, 4 epochs"
    set_seed(0, reproducible=True)
    dls = ImplicitDataLoaders.from_df(positives, n_valid=2, n_neg=4, bs=1024, seed=0, device='cpu')
    learn = implicit_learner(dls, n_factors=32, loss='bpr')
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(4, 1e-2, wd=1e-4)
    return learn


def _train_pairs(learn):
    user, item = learn.dls.cat_names
    items = learn.dls.train.items
    return pd.DataFrame({user: np.array(learn.dls.classes[user], dtype=object)[items[user]],
                         item: np.array(learn.dls.classes[item], dtype=object)[items[item]]}).astype('int64')


@pytest.mark.parametrize('mode', ['uniform', 'popularity'])
def test_sampler_never_returns_a_training_positive_on_ml100k(positives, mode):
    users, u_rows = np.unique(positives.user, return_inverse=True)
    items, i_rows = np.unique(positives.movie, return_inverse=True)
    n_users, n_items = len(users) + 1, len(items) + 1
    dense = np.zeros((n_users, n_items), dtype=bool)
    dense[u_rows + 1, i_rows + 1] = True
    sampler = NegativeSampler(u_rows + 1, i_rows + 1, n_users, n_items, mode)
    rows = np.arange(1, n_users)
    negs = sampler.sample(rows, 50, np.random.default_rng(0))
    assert negs.shape == (len(rows), 50)
    assert not dense[rows[:, None], negs].any()
    assert negs.min() >= 1 and negs.max() < n_items


def test_split_keeps_every_user_in_training(trained, positives):
    dls = trained.dls
    train_users = set(np.array(dls.classes['user'], dtype=object)[dls.train.items['user']])
    assert train_users == set(positives.user)
    assert len(dls.train.items) + len(dls.heldout) == len(positives.drop_duplicates())
    counts = positives.groupby('user').size()
    assert (dls.heldout.groupby('user').size() == 2).all()
    assert set(dls.heldout.user) == set(counts.index[counts >= 3])


def test_bpr_beats_popularity_on_ml100k(trained):
    held = trained.dls.heldout
    model = evaluate_implicit(trained, k=10)
    pop = ranking_metrics(popularity_recs(_train_pairs(trained), held.user.unique(), 10), held, k=10)
    assert model['ndcg'] > 1.2 * pop['ndcg'], (model['ndcg'], pop['ndcg'])
    assert model['recall'] > 1.2 * pop['recall'], (model['recall'], pop['recall'])


def test_epoch_metrics_equal_evaluate_on_recommend(trained):
    shown = dict(zip(trained.recorder.metric_names[1:], trained.recorder.values[-1]))
    held = trained.dls.heldout
    recs = recommend(from_learner(trained), users=held.user.unique(), k=10, exclude=_train_pairs(trained),
                     device='cpu', progress=False)
    after = ranking_metrics(recs, held, k=10)
    assert shown['ndcg@10'] == pytest.approx(after['ndcg'], abs=1e-6)
    assert shown['recall@10'] == pytest.approx(after['recall'], abs=1e-6)


def test_recommend_all_excludes_training_positives_and_survives_save_load(trained, positives, tmp_path):
    top = trained.recommend_all(k=20, device='cpu', progress=False)
    train = _train_pairs(trained)
    assert len(top) == positives.user.nunique() * 20          # 942: one user has no rating >= 4
    assert len(top.merge(train, on=['user', 'movie'])) == 0
    exp = CollabExport.load(from_learner(trained).save(tmp_path / 'm.fcf'))
    again = recommend(exp, k=20, exclude=train, device='cpu', progress=False)
    pd.testing.assert_frame_equal(top[['user', 'movie', 'rank']], again[['user', 'movie', 'rank']])
    assert exp.item_counts.sum() == len(train)


def test_popularity_sampling_and_weights_train(positives, ml100k):
    plays = ml100k.loc[ml100k.rating >= 4, ['user', 'movie', 'rating']]
    learn = train_implicit(plays, 'user', 'movie', weight='rating', loss='bce', n_factors=16, epochs=2,
                           neg_sampling='popularity', bs=2048, log=None, device='cpu')
    assert learn.dls.sampler.mode == 'popularity'
    np.testing.assert_allclose(np.sort(learn.dls.train.weights)[[0, -1]], np.log1p([4, 5]), rtol=1e-6)
    assert np.isfinite(np.array(learn.recorder.values, dtype=float)).all()


def test_bad_inputs_name_the_problem(positives):
    with pytest.raises(ImplicitDataError, match='n_neg must be a whole number >= 1, got 0'):
        ImplicitDataLoaders.from_df(positives, n_neg=0)
    with pytest.raises(ImplicitDataError, match=r"held-out user\(s\) have no positive in training, e.g. \[99999\]"):
        ImplicitDataLoaders.from_df(positives, valid_df=pd.DataFrame({'user': [99999], 'movie': [1]}))
    with pytest.raises(MissingColumnError, match="no column 'item'"):
        ImplicitDataLoaders.from_df(positives, 'user', 'item')
    with pytest.raises(ImplicitDataError, match='inf'):
        train_implicit(positives.assign(w=np.inf), weight='w', log=None)


def test_implicit_export_ranks_where_fastai_cannot_be_imported(trained, tmp_path):
    "After `from_learner`, nothing needs fastai: the saved implicit model ranks in a process that blocks it"
    import subprocess, sys, textwrap
    path = from_learner(trained).save(tmp_path / 'implicit.fcf')
    code = textwrap.dedent(f'''
        import sys, importlib.abc
        class _NoFastai(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == 'fastai' or name.startswith('fastai.'): raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
        sys.meta_path.insert(0, _NoFastai())
        from fastcf.export import CollabExport
        from fastcf.predict import recommend
        recs = recommend(CollabExport.load({str(path)!r}), users=[1, 2], k=5, device='cpu', progress=False)
        print(recs.to_json(orient='split'))
    ''')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    import io
    recs = pd.read_json(io.StringIO(res.stdout), orient='split')
    keys, scores = dense_reference(from_learner(trained), [1, 2])
    check_ranking_frame(recs, keys, 5, ref_scores=scores)
