"""`explain(…, by='feature')` on hybrid exports: the terms add up to the export's own score, the identity and feature
parts are the ones the model was built from, cold rows have no identity; `by='factor'` is unchanged; the data behind
`plot_explanation` and `plot_factors` (bars, labels, titles) on the Agg backend."""
import io, zipfile
import numpy as np, pandas as pd, pytest, torch

from fastcf.export import CollabExport
from fastcf.features import SideFeatures
from fastcf.vocab import Vocab
from fastcf.models import sigmoid_range
from fastcf.predict import predict
from fastcf.explain import explain, plot_explanation
from fastcf.testing import random_export


def _hand_hybrid(seed=0, n_users=30, n_items=40, nf=5):
    "A hybrid dot export built from known parts: (export, parts) with the identities and the feature tables"
    rng = np.random.default_rng(seed)
    ufeat = pd.DataFrame((rng.random((n_users, 12)) < 0.3) * rng.normal(1, 0.5, (n_users, 12)),
                         index=[f'u{j}' for j in range(n_users)], columns=[f'occ{j}' for j in range(12)])
    ifeat = pd.DataFrame(rng.random((n_items, 7)) < 0.4, index=np.arange(100, 100 + n_items),
                         columns=['drama', 'comedy', 'noir', 'war', 'musical', 'sci-fi', 'western']).astype(np.float32)
    uw, ub, iw, ib = rng.normal(0, .5, (12, nf)), rng.normal(0, .5, 12), rng.normal(0, .5, (7, nf)), rng.normal(0, .5, 7)
    u_id, u_idb = rng.normal(0, .5, (n_users + 1, nf)), rng.normal(0, .5, n_users + 1)     # row 0: '#na#'
    i_id, i_idb = rng.normal(0, .5, (n_items + 1, nf)), rng.normal(0, .5, n_items + 1)
    pad = lambda a: np.vstack([np.zeros((1,) + a.shape[1:]), a]) if a.ndim == 2 else np.r_[0, a]
    exp = CollabExport('dot', 'user', 'movie', Vocab(list(ufeat.index), 1), Vocab(list(ifeat.index), 1),
                       u_id + pad(ufeat.values @ uw), i_id + pad(ifeat.values @ iw),
                       u_idb + pad(ufeat.values @ ub), i_idb + pad(ifeat.values @ ib), y_range=(0, 5),
                       user_features=SideFeatures(list(ufeat.columns), uw, ub), item_features=SideFeatures(list(ifeat.columns), iw, ib))
    return exp, dict(ufeat=ufeat, ifeat=ifeat, uw=uw, ub=ub, iw=iw, ib=ib, u_id=u_id, u_idb=u_idb, i_id=i_id, i_idb=i_idb)


def test_feature_terms_add_up_to_the_exports_score_and_are_its_parts():
    exp, p = _hand_hybrid()
    rng = np.random.default_rng(1)
    users, items = rng.choice(exp.user_ids, 60), rng.choice(exp.item_ids, 60)
    scores = predict(exp, pd.DataFrame({'user': users, 'movie': items}))
    for user, item, score in zip(users, items, scores):
        got = explain(exp, user, item, by='feature', user_features=p['ufeat'], item_features=p['ifeat'])
        assert list(got.columns) == ['term', 'contribution', 'interaction', 'bias']
        logit = got.contribution.sum()
        assert abs(float(sigmoid_range(torch.tensor(logit, dtype=torch.float64), 0, 5)) - score) < 1e-5
        assert abs(got.attrs['score'] - score) < 1e-5 and abs(got.attrs['logit'] - logit) < 1e-5
        u, i = exp.users.rows([user])[0], exp.items.rows([item])[0]
        uv, iv = exp.user_factors[u].astype(np.float64), exp.item_factors[i].astype(np.float64)
        t = got.set_index('term')
        assert abs(t.loc['user identity', 'interaction'] - p['u_id'][u] @ iv / 2) < 1e-5
        assert abs(t.loc['user identity', 'bias'] - p['u_idb'][u]) < 1e-5
        assert abs(t.loc['item identity', 'interaction'] - p['i_id'][i] @ uv / 2) < 1e-5
        assert abs(t.loc['item identity', 'bias'] - p['i_idb'][i]) < 1e-5
        for name, x in p['ufeat'].loc[user].items():
            if not x: assert f'user feature: {name}' not in t.index; continue
            j = p['ufeat'].columns.get_loc(name)
            assert abs(t.loc[f'user feature: {name}', 'contribution'] - (x * p['uw'][j] @ iv / 2 + x * p['ub'][j])) < 1e-5
        for name, x in p['ifeat'].loc[item].items():
            if not x: assert f'item feature: {name}' not in t.index; continue
            j = p['ifeat'].columns.get_loc(name)
            assert abs(t.loc[f'item feature: {name}', 'contribution'] - (x * p['iw'][j] @ uv / 2 + x * p['ib'][j])) < 1e-5
        assert list(got.contribution.abs()) == sorted(got.contribution.abs(), reverse=True)


def test_sparse_and_dense_feature_tables_explain_alike():
    sp = pytest.importorskip('scipy.sparse')
    exp, p = _hand_hybrid(seed=2)
    sparse_u = (sp.csr_matrix(p['ufeat'].values), p['ufeat'].index.values, list(p['ufeat'].columns))
    sparse_i = (sp.coo_matrix(p['ifeat'].values), p['ifeat'].index.values, list(p['ifeat'].columns))
    for user, item in [('u3', 104), ('u0', 139), ('u29', 100)]:
        dense = explain(exp, user, item, by='feature', user_features=p['ufeat'], item_features=p['ifeat'])
        pd.testing.assert_frame_equal(explain(exp, user, item, by='feature', user_features=sparse_u, item_features=sparse_i), dense)


def test_cold_rows_have_no_identity_term():
    exp, p = _hand_hybrid(seed=3)
    new_items = pd.DataFrame({'drama': [1., 0.], 'comedy': [0., 2.], 'noir': [1., 0.], 'war': [0., 0.], 'musical': [0., 1.],
                              'sci-fi': [0., 0.], 'western': [0.5, 0.]}, index=[500, 501])
    new_users = p['ufeat'].iloc[:2].set_axis(['new0', 'new1'])
    cold = exp.add_items(new_items).add_users(new_users)
    all_items = pd.concat([p['ifeat'], new_items])
    for user, item, ident in [('u1', 500, ['user identity']), ('new0', 104, ['item identity']), ('new1', 501, [])]:
        got = explain(cold, user, item, by='feature', user_features=pd.concat([p['ufeat'], new_users]), item_features=all_items)
        assert [t for t in got.term if t.endswith('identity')] == ident
        score = predict(cold, pd.DataFrame({'user': [user], 'movie': [item]}))[0]
        assert abs(got.attrs['score'] - score) < 1e-5
        assert abs(float(sigmoid_range(torch.tensor(got.contribution.sum(), dtype=torch.float64), 0, 5)) - score) < 1e-5


def test_by_factor_is_unchanged_for_a_plain_export():
    "The pre-hybrid output: the two biases, then u_j·v_j by decreasing |product|, columns term and contribution"
    exp = random_export(scale=0.5, seed=4)
    for user, item in [(3, 7), (0, 49), (99, 0)]:
        u, i = exp.users.rows([user])[0], exp.items.rows([item])[0]
        products = exp.user_factors[u].astype(np.float64) * exp.item_factors[i].astype(np.float64)
        order = np.argsort(-np.abs(products), kind='stable')
        ref = pd.DataFrame({'term': ['user bias', 'item bias'] + [f'factor {j}' for j in order],
                            'contribution': np.concatenate([[exp.user_bias[u], exp.item_bias[i]], products[order]])})
        got = explain(exp, user, item)
        pd.testing.assert_frame_equal(got, ref)
        assert got.attrs['by'] == 'factor'
        assert abs(got.attrs['score'] - predict(exp, pd.DataFrame({'user': [user], 'item': [item]}))[0]) < 1e-5
    with pytest.raises(ValueError, match="needs a hybrid export"): explain(exp, 3, 7, by='feature')


def test_the_plots_data(tmp_path):
    mpl = pytest.importorskip('matplotlib')
    mpl.use('Agg')
    import matplotlib.pyplot as plt
    exp, p = _hand_hybrid(seed=5)
    got = explain(exp, 'u4', 120, by='feature', user_features=p['ufeat'], item_features=p['ifeat'])
    assert len(got) > 6
    ax = plot_explanation(got, top=5)
    labels = [t.get_text() for t in ax.get_yticklabels()][::-1]                       # top to bottom
    widths = [b.get_width() for b in ax.patches][::-1]
    assert labels == got.term.tolist()[:5] + [f'the other {len(got) - 5} terms']
    np.testing.assert_allclose(widths, list(got.contribution[:5]) + [got.contribution[5:].sum()], atol=1e-9)
    assert ax.get_title() == f"user 'u4', item 120: logit {got.attrs['logit']:.3f}, score {got.attrs['score']:.3f}"
    assert [b.get_facecolor() for b in ax.patches][0] == mpl.colors.to_rgba('tab:grey')
    fax = exp.plot_factors('user', n=30, figsize=(3, 3))
    boxes = [t.get_window_extent() for t in fax.texts]
    assert not any(a.overlaps(b) for j, a in enumerate(boxes) for b in boxes[j + 1:])
    assert fax.get_title().startswith('user factors (user): the 30 with the largest |bias|\nPCA of all 30 users')
    assert fax.get_xlabel().startswith('PC1 (') and fax.get_xlabel().endswith('% of variance)')
    fax.figure.savefig(tmp_path / 'factors.png')
    plt.close('all')


def _movielens_features(ml100k_path):
    "MovieLens-100k's genres (item) and gender/occupation (user) as 0/1 tables, from the same recbole wheel as the ratings"
    from conftest import _recbole_wheel
    with zipfile.ZipFile(_recbole_wheel(ml100k_path)) as z:
        read = lambda k: pd.read_csv(io.BytesIO(z.read(f'recbole/dataset_example/ml-100k/ml-100k.{k}')), sep='\t', dtype=str,
                                     encoding='latin-1').rename(columns=lambda c: c.split(':')[0])
        item, user = read('item'), read('user')
    genres = item['class'].fillna('').str.get_dummies(sep=' ').astype(np.float32).set_index(item.item_id.astype(int))
    users = pd.concat([pd.get_dummies(user.gender, prefix='gender'), pd.get_dummies(user.occupation, prefix='occ')], axis=1)
    return genres, users.astype(np.float32).set_index(user.user_id.astype(int))


@pytest.mark.slow
def test_movielens_genres_explain_the_trained_hybrid(ml100k, ml100k_path):
    from fastai.torch_core import set_seed
    from fastcf.hybrid import HybridDataLoaders, hybrid_learner
    from fastcf.export import from_learner
    genres, users = _movielens_features(ml100k_path)
    ratings = ml100k[['user', 'movie', 'rating']]
    cold_movies = genres.index[genres.index % 50 == 0]
    set_seed(0)
    dls = HybridDataLoaders.from_df(ratings[~ratings.movie.isin(cold_movies)], user_features=users, item_features=genres,
                                    valid_pct=0.1, seed=0, bs=1024)
    learn = hybrid_learner(dls, n_factors=16, y_range=(0.5, 5.5), identity_drop=0.3)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 5e-3, wd=0.1)
    exp = from_learner(learn).add_items(genres.loc[cold_movies])
    model = learn.model.eval()
    rng = np.random.default_rng(0)
    for user, movie in zip(rng.choice(exp.user_ids, 30), rng.choice(exp.item_ids, 30)):
        got = explain(exp, user, movie, by='feature', user_features=users, item_features=genres)
        active = [f'item feature: {g}' for g in genres.columns[genres.loc[movie].values != 0]]
        assert sorted(t for t in got.term if t.startswith('item feature')) == sorted(active)
        assert ('item identity' in set(got.term)) == (movie not in set(cold_movies))
        score = predict(exp, pd.DataFrame({'user': [user], 'movie': [movie]}))[0]
        assert abs(got.attrs['score'] - score) < 1e-5
        if movie in set(cold_movies): continue
        with torch.no_grad():                                                         # the network's own logit
            u = model.represent('user', torch.tensor([dls.classes['user'].o2i[user]]))[0].double()
            v = model.represent('item', torch.tensor([dls.classes['movie'].o2i[movie]]))[0].double()
        assert abs(got.contribution.sum() - (u[:-1] @ v[:-1] + u[-1] + v[-1]).item()) < 1e-5


def test_a_side_without_features_is_its_identity():
    "An export with item features only: the user's vector is one term, and no user table is needed"
    exp, p = _hand_hybrid(seed=6)
    items_only = CollabExport('dot', 'user', 'movie', exp.users, exp.items, exp.user_factors, exp.item_factors, exp.user_bias,
                              exp.item_bias, y_range=(0, 5), item_features=exp.item_features)
    got = explain(items_only, 'u2', 110, by='feature', item_features=p['ifeat'])
    assert [t for t in got.term if t.startswith('user')] == ['user identity']
    u, i = items_only.users.rows(['u2'])[0], items_only.items.rows([110])[0]
    t = got.set_index('term')
    assert abs(t.loc['user identity', 'contribution'] - (items_only.user_factors[u].astype(np.float64) @ items_only.item_factors[i] / 2
                                                         + items_only.user_bias[u])) < 1e-5
    assert abs(got.attrs['score'] - predict(items_only, pd.DataFrame({'user': ['u2'], 'movie': [110]}))[0]) < 1e-5
    with pytest.raises(ValueError, match='pass item_features='): explain(items_only, 'u2', 110, by='feature')
