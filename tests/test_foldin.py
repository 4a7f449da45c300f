"""fold_in: new users and items folded into a trained export — what nbs/51_foldin.ipynb and nbs/50_solve.ipynb do not
already check (planted items, the ridge solution in closed form, untouched old rows, the report, bad input, the neural
model, the feature prior of hybrid exports, no fastai), and (slow) real data: MovieLens-100k at n = 20 against the average-user baselines. Recovering planted
users, the noise estimate, batched against one by one, the prior, and the notebook's cases of non-finite weights, old
users' recommendations and the save/load round trip are the notebooks' tests, not repeated here."""
import subprocess, sys, textwrap, warnings
import numpy as np, pandas as pd, pytest, torch
from fastcf.export import CollabExport
from fastcf.vocab import Vocab, MissingColumnError
from fastcf.models import EmbeddingNN, sigmoid_range
from fastcf.solve import FoldInError, row_prior, trained_rows
from fastcf.foldin import fold_in, rating_frame
from fastcf.predict import predict, recommend

warnings.filterwarnings('ignore', category=UserWarning)


def planted_export(n_users=2000, n_items=200, n_factors=8, y_range=None, seed=0, ids='int', counts=False):
    "A dot-model export with known random factors and biases, '#na#' rows included"
    r = np.random.default_rng(seed)
    pad = lambda a: np.concatenate([np.zeros((1,) + a.shape[1:]), a])
    user_ids = [f"u{i}" for i in range(n_users)] if ids == 'str' else np.arange(n_users)
    item_ids = [f"i{i}" for i in range(n_items)] if ids == 'str' else np.arange(n_items)
    return CollabExport('dot', 'user', 'item', Vocab(user_ids, 1, 'user'), Vocab(item_ids, 1, 'item'),
                        pad(r.normal(0, 0.4, (n_users, n_factors))), pad(r.normal(0, 1, (n_items, n_factors))),
                        pad(r.normal(0, 0.3, n_users)), pad(r.normal(3, 0.5, n_items)), y_range=y_range,
                        user_counts=np.r_[0, r.integers(1, 50, n_users)] if counts else None,
                        item_counts=np.r_[0, r.integers(1, 50, n_items)] if counts else None)


def planted_users(e, n_new=100, per_user=40, noise=0.1, seed=1, first_id=10_000):
    "Ratings of new users drawn from the export's user population, and their true [factors, bias] rows"
    r = np.random.default_rng(seed)
    truth = np.concatenate([r.normal(0, 0.4, (n_new, e.n_factors)), r.normal(0, 0.3, (n_new, 1))], 1)
    items = np.stack([r.choice(len(e.item_ids), per_user, replace=False) for _ in range(n_new)])
    z = np.einsum('uf,ujf->uj', truth[:, :-1], e.item_factors[items + 1]) + truth[:, -1:] + e.item_bias[items + 1]
    y = z if e.y_range is None else sigmoid_range(torch.from_numpy(z), *e.y_range).numpy()
    frame = pd.DataFrame({'user': np.repeat(np.arange(n_new) + first_id, per_user), 'item': e.item_ids[items.ravel()],
                          'rating': (y + r.normal(0, noise, y.shape)).ravel()})
    return frame, truth


def rows_of(e, n):
    "[factors, bias] of the last `n` user rows"
    return np.concatenate([e.user_factors[-n:], e.user_bias[-n:, None]], 1)


@pytest.fixture(scope='module')
def planted(): return planted_export()


@pytest.fixture(scope='module')
def planted_frame(planted): return planted_users(planted)


# --- planted data (planted users and the noise estimate: nbs/50_solve.ipynb)

def test_recovers_planted_items():
    e = planted_export(n_users=300, n_items=500, y_range=(0, 6))
    r = np.random.default_rng(3)
    truth = np.concatenate([r.normal(0, 1, (20, e.n_factors)), r.normal(3, 0.5, (20, 1))], 1)
    users = np.stack([r.choice(300, 60, replace=False) for _ in range(20)])
    z = np.einsum('if,ijf->ij', truth[:, :-1], e.user_factors[users + 1]) + truth[:, -1:] + e.user_bias[users + 1]
    y = sigmoid_range(torch.from_numpy(z), 0, 6).numpy() + r.normal(0, 0.05, z.shape)
    frame = pd.DataFrame({'user': users.ravel(), 'item': np.repeat(np.arange(20) + 1000, 60), 'rating': y.ravel()})
    folded = fold_in(e, frame, side='item')
    got = np.concatenate([folded.item_factors[-20:], folded.item_bias[-20:, None]], 1)
    assert np.median(np.abs(got - truth)) < 0.08
    assert folded.item_ids[-20:].tolist() == list(range(1000, 1020))
    assert np.array_equal(folded.user_factors, e.user_factors) and np.array_equal(folded.item_factors[:501], e.item_factors)
    assert (folded.folded.columns[0], folded.folded.attrs['side']) == ('item', 'item')


def test_closed_form_is_the_ridge_solution(planted, planted_frame):
    "Without a sigmoid the answer is (XᵀX + wd·C⁻¹)⁻¹(Xᵀ(r − b_i) + wd·C⁻¹μ), computed here directly"
    frame, _ = planted_frame
    one = frame[frame.user == 10_000]
    folded = fold_in(planted, one, wd=0.5)
    p = row_prior(planted)
    precision = np.linalg.inv(p.chol @ p.chol.T)
    rows = planted.items.rows(one.item)
    x = np.concatenate([planted.item_factors[rows], np.ones((len(rows), 1))], 1).astype(np.float64)
    rhs = x.T @ (one.rating.values - planted.item_bias[rows]) + 0.5 * precision @ p.mean
    expected = np.linalg.solve(x.T @ x + 0.5 * precision, rhs)
    np.testing.assert_allclose(rows_of(folded, 1)[0], expected, atol=1e-5)


# --- old rows, the report (batched vs one by one: nbs/51_foldin.ipynb, "One batch or one at a time")

def test_old_rows_bit_identical_and_input_untouched(planted_frame):
    e = planted_export(y_range=(0, 6), counts=True)
    before = {k: getattr(e, k).copy() for k in ('user_factors', 'item_factors', 'user_bias', 'item_bias', 'user_counts', 'item_counts')}
    ids_before = e.user_ids.copy()
    folded = fold_in(e, planted_frame[0])
    n = e.users.n_rows
    for k, v in before.items():
        assert np.array_equal(getattr(e, k), v), k                                    # input export unchanged
        assert np.array_equal(getattr(folded, k)[:len(v)], v), k                     # old rows bit for bit
    assert np.array_equal(e.user_ids, ids_before) and len(e.user_ids) == 2000
    assert folded.user_factors.shape == (n + 100, 8) and folded.user_factors.dtype == np.float32
    assert (folded.user_counts[n:] == 0).all()                                      # not trained: out of later priors
    assert np.array_equal(trained_rows(folded), trained_rows(e))
    assert folded.user_factors is not e.user_factors and folded.item_factors is not e.item_factors


def test_report(planted, planted_frame):
    frame, _ = planted_frame
    folded = fold_in(planted, frame.head(80), ids=[10_001, 20_000, 20_001])
    rep = folded.folded
    assert rep.columns.tolist() == ['user', 'row', 'n_ratings', 'fallback', 'updated', 'prior', 'fit_rmse', 'converged']
    assert (rep.prior == 'average').all()                                           # no features: the ordinary prior
    assert rep.user.tolist() == [10_000, 10_001, 20_000, 20_001]
    assert rep.n_ratings.tolist() == [40, 40, 0, 0] and rep.fallback.tolist() == [False, False, True, True]
    assert rep.row.tolist() == [2001, 2002, 2003, 2004] and not rep.updated.any()
    assert rep.fit_rmse[:2].notna().all() and rep.fit_rmse[2:].isna().all()
    assert set(rep.attrs) >= {'wd', 'noise_var', 'prior_var', 'side'}
    p = row_prior(planted)
    np.testing.assert_allclose(rows_of(folded, 2), np.tile(p.mean, (2, 1)), atol=1e-6)   # fallbacks: the average user


def test_update_refits_in_place(planted, planted_frame):
    frame, _ = planted_frame
    first = fold_in(planted, frame)
    with pytest.raises(FoldInError, match=r"2 user ID\(s\) are already in the model, e\.g\. \[10000, 10001\]"):
        fold_in(first, frame[frame.user.isin([10_000, 10_001])])
    changed = frame[frame.user == 10_000].assign(rating=lambda d: d.rating + 1)
    again = fold_in(first, changed, update=True)
    row = first.users.rows([10_000])[0]
    assert len(again.user_ids) == len(first.user_ids) and again.folded.updated.all() and again.folded.row.tolist() == [row]
    assert again.user_bias[row] > first.user_bias[row] + 0.5                         # all ratings one higher
    others = np.arange(first.users.n_rows) != row
    assert np.array_equal(again.user_factors[others], first.user_factors[others])
    with pytest.raises(FoldInError, match="already in the model"):                     # trained users too
        fold_in(planted, pd.DataFrame({'user': [5], 'item': [1], 'rating': [3.]}))


def test_recommend_and_predict_on_folded(planted_frame):
    "Old users' recommendations and the save/load round trip: nbs/51_foldin.ipynb"
    e = planted_export(y_range=(0, 6), ids='int')
    frame, _ = planted_frame
    folded = fold_in(e, frame)
    recs = recommend(folded, users=[10_000, 10_001], k=5, exclude=frame)
    assert recs.user.tolist() == [10_000] * 5 + [10_001] * 5
    assert not set(zip(recs.user, recs.item)) & set(zip(frame.user, frame.item))
    pairs = frame.head(10)[['user', 'item']]
    np.testing.assert_allclose(predict(folded, pairs), folded.score_rows(folded.users.rows(pairs.user), folded.items.rows(pairs.item)))


def test_string_ids():
    e = planted_export(n_users=300, n_items=50, ids='str', y_range=(0, 6))
    new = pd.DataFrame({'user': ['new1'] * 5 + ['new2'] * 5, 'item': [f"i{i}" for i in range(10)], 'rating': np.linspace(1, 5, 10)})
    folded = fold_in(e, new, ids=['new3'])
    assert folded.user_ids[-3:].tolist() == ['new1', 'new2', 'new3'] and folded.users.id_type == 'str'
    assert len(recommend(folded, users=['new1', 'new3'], k=3)) == 6


# --- bad input: one clear, one-line message each

@pytest.fixture(scope='module')
def small(): return planted_export(n_users=50, n_items=20, y_range=(0, 6))

BASE = pd.DataFrame({'user': [900, 900, 901, 901], 'item': [1, 2, 3, 4], 'rating': [4., 3., 5., 2.]})

@pytest.mark.parametrize('change,kw,match', [
    (lambda d: d.assign(item=[1, 2, 777, 778]), {}, r"2 item ID\(s\) in the ratings are not in the model, e\.g\. \[777, 778\]"),
    (lambda d: d.assign(rating=[1, np.nan, 3, 4.]), {}, r"1 rating\(s\) in 'rating' are NaN or infinite, for user \[900\]"),
    (lambda d: d.assign(rating=[1, np.inf, 3, 4.]), {}, r"NaN or infinite"),
    (lambda d: d.assign(rating=['4', 'x', '3', '2']), {}, r"rating column 'rating' is not numeric .*\['x'\]"),
    (lambda d: d.assign(rating=[True, False, True, True]), {}, r"is not numeric"),
    (lambda d: d.assign(rating=['4', '3.5', '5', '2']), {}, r"'rating' holds numbers stored as text .*e\.g\. \['4', '3\.5', '5'\]; convert it first"),
    (lambda d: d.head(0), {}, r"nothing to fold in: the ratings are empty"),
    (lambda d: pd.concat([d, d.head(1)]), {}, r"1 \(user, item\) pair\(s\) are rated more than once, e\.g\. \[\(900, 1\)\]; pass duplicates='mean'"),
    (lambda d: d.assign(stamp=1), {}, r"cannot tell which column holds the ratings among \['rating', 'stamp'\]; pass rating_name="),
    (lambda d: d[['user', 'item']], {}, r"ratings has no rating column"),
    (lambda d: d.assign(user=d.user.astype(str)), {}, r"the model's user IDs are integers but the new ones are strings"),
    (lambda d: d.assign(user=[np.nan, 1., 2., 3.]), {}, r"1 rating\(s\) have no 'user' ID"),
    (lambda d: d.assign(user=[5, 5, 901, 901]), {}, r"1 user ID\(s\) are already in the model, e\.g\. \[5\]; pass update=True"),
    (lambda d: d, dict(wd=0), r"wd must be a positive number"),
    (lambda d: d, dict(max_iter=0), r"max_iter must be a positive integer"),
    (lambda d: d, dict(max_iter=2.5), r"max_iter must be a positive integer"),
    (lambda d: d, dict(wd='big'), r"wd must be a positive number, got 'big'"),
    (lambda d: d, dict(side='users'), r"side must be 'user' or 'item'"),
    (lambda d: d, dict(duplicates='first'), r"duplicates must be 'raise' or 'mean'"),
    (lambda d: d.values, {}, r"ratings must be a DataFrame"),
    (lambda d: None, {}, r"nothing to fold in: give ratings, ids, features, or some of them"),
    (lambda d: d, dict(ids=[None]), r"ids contains missing values"),
])
def test_bad_input(small, change, kw, match):
    with pytest.raises(FoldInError, match=match) as info: fold_in(small, change(BASE.copy()), **kw)
    assert '\n' not in str(info.value) and isinstance(info.value, ValueError)


@pytest.mark.parametrize('change,kw,match', [
    (lambda d: d.rename(columns={'item': 'movie'}), {}, r"ratings has no column 'item'; its columns are \['user', 'movie', 'rating'\]"),
    (lambda d: d, dict(rating_name='score'), r"ratings has no column 'score'"),
])
def test_missing_columns(small, change, kw, match):
    "A missing column is fastcf's one MissingColumnError (a ValueError, like FoldInError), not a FoldInError of its own"
    with pytest.raises(MissingColumnError, match=match): fold_in(small, change(BASE.copy()), **kw)


def test_fold_in_never_writes_non_finite_rows():
    "Ratings far beyond float32 give NaN factors when wd is estimated: refused, naming the users (wd fixed: the notebook)"
    e = planted_export(n_users=200, n_items=50)
    frame, _ = planted_users(e, n_new=5, per_user=10)
    with pytest.raises(FoldInError, match=r"non-finite weights for 5 user\(s\), e\.g\. \[10000, 10001, 10002\]"):
        fold_in(e, frame.assign(rating=frame.rating * 1e200))


def test_fold_in_refuses_a_model_with_non_finite_weights():
    "New items into an export whose tables were changed in place after it was built (new users: the notebook)"
    e = planted_export(n_users=200, n_items=50)
    frame, _ = planted_users(e, n_new=5, per_user=10)
    e.item_factors[3, 0] = np.nan
    new_items = frame.rename(columns={'user': 'item', 'item': 'user'}).assign(user=frame.item % 200)
    with pytest.raises(FoldInError, match=r"non-finite weights: the item factors .* row 3 \(item ID 2\): nan"):
        fold_in(e, new_items, side='item')


def test_duplicates_mean_and_rating_name(small):
    twice = pd.concat([BASE, BASE.head(1).assign(rating=2.)], ignore_index=True).assign(stamp=0)
    checked = rating_frame(small, twice, rating_name='rating', duplicates='mean')
    assert len(checked) == 4 and checked.rating.iloc[0] == 3.0
    folded = fold_in(small, twice, rating_name='rating', duplicates='mean')
    assert folded.folded.n_ratings.tolist() == [2, 2]


def test_placeholder_is_not_an_id():
    e = planted_export(n_users=30, n_items=10, ids='str')
    with pytest.raises(FoldInError, match="'#na#' is fastai's placeholder"): fold_in(e, ids=['#na#'])


def test_ratings_outside_y_range_warn(small):
    with pytest.warns(UserWarning, match=r"1 rating\(s\) lie outside the model's y_range"):
        fold_in(small, BASE.assign(rating=[4., 3., 5., 7.]))


# --- the neural model

def nn_export(seed=0, n_users=400, n_items=60, emb=6):
    "A random EmbeddingNN export whose user embeddings are a N(0.3, 0.5²) population"
    torch.manual_seed(seed)
    model = EmbeddingNN([(n_users + 1, emb), (n_items + 1, emb)], [16, 8], y_range=(0, 5.5)).eval()
    with torch.no_grad():
        for m in model.embeds: m.weight.normal_(0.3, 0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.Linear): m.weight.normal_(0, 0.6)
    classes = {'user': ['#na#'] + list(range(n_users)), 'item': ['#na#'] + list(range(n_items))}
    return CollabExport.from_model(model, classes)


def test_nn_fold_in_beats_the_average_user():
    e = nn_export()
    r = np.random.default_rng(0)
    truth = r.normal(0.3, 0.5, (20, 6)).astype(np.float32)
    items = np.stack([r.permutation(60) for _ in range(20)])
    from fastcf.export import run_ops
    x = torch.cat([torch.from_numpy(truth)[:, None, :].expand(20, 60, 6), torch.from_numpy(e.item_factors[items + 1])], -1)
    y = run_ops(e.mlp, x.reshape(-1, 12)).reshape(20, 60).detach().numpy() + r.normal(0, 0.1, (20, 60))
    frame = pd.DataFrame({'user': np.repeat(np.arange(20) + 1000, 60), 'item': items.ravel(), 'rating': y.ravel()})
    seen = frame.groupby('user').head(20)
    unseen = frame.drop(seen.index)
    folded, average = fold_in(e, seen), fold_in(e, ids=np.arange(20) + 1000)
    err = lambda exp, d: float(np.sqrt(np.mean((predict(exp, d) - d.rating.values) ** 2)))
    assert err(folded, seen) < 0.6 * err(average, seen)                                 # the fit's own loss
    assert err(folded, unseen) < 0.8 * err(average, unseen)                             # and new ratings
    assert np.array_equal(folded.user_factors[:401], e.user_factors) and folded.folded.converged.mean() > 0.5
    items_folded = fold_in(e, frame.rename(columns={'user': 'item', 'item': 'user'}).assign(item=lambda d: d.item + 5000), side='item')
    assert items_folded.item_factors.shape == (61 + 20, 6)


# --- hybrid exports: the features' embedding as the prior mean (features=)

def with_user_features(e, n_features=6, seed=5):
    "`e` (dot or nn) as a hybrid export: random user feature embeddings (and biases for 'dot'), named f0, f1, …"
    r = np.random.default_rng(seed)
    from fastcf.features import SideFeatures
    feats = SideFeatures([f'f{j}' for j in range(n_features)], r.normal(0, 0.3, (n_features, e.user_factors.shape[1])),
                         r.normal(0, 0.2, n_features) if e.kind == 'dot' else None)
    return CollabExport(e.kind, e.user_name, e.item_name, e.users, e.items, e.user_factors, e.item_factors, e.user_bias,
                        e.item_bias, y_range=e.y_range, mlp=e.mlp, user_counts=e.user_counts, user_features=feats)


def feature_frame(ids, n_features=6, seed=6):
    "A 0/1 feature table (about half the bits set) for `ids`"
    r = np.random.default_rng(seed)
    return pd.DataFrame((r.random((len(ids), n_features)) < 0.5).astype(np.float32), index=list(ids),
                        columns=[f'f{j}' for j in range(n_features)])


def one_factor_export(y_range=None):
    """1 factor, 4 trained users whose [factor, bias] rows are (1, 0), (-1, 0), (0, 1), (0, -1): mean 0, covariance (2/3)·I,
    so the prior's Cholesky factor is I and its penalty is wd·|θ − μ|²; items 10 and 20 with factors 1 and 2, biases 0.5 and
    -0.5; user feature 'a' embeds to factor 0.5, bias 0.25"""
    from fastcf.features import SideFeatures
    pad = lambda a: np.concatenate([np.zeros((1,) + np.shape(a)[1:]), a])
    return CollabExport('dot', 'user', 'item', Vocab([0, 1, 2, 3], 1, 'user'), Vocab([10, 20], 1, 'item'),
                        pad(np.array([[1.], [-1.], [0.], [0.]])), pad(np.array([[1.], [2.]])), pad(np.array([0., 0., 1., -1.])),
                        pad(np.array([0.5, -0.5])), y_range=y_range,
                        user_features=SideFeatures(['a', 'b'], np.array([[0.5], [1.]]), np.array([0.25, 0.])))


ONE = pd.DataFrame({'user': [7, 7], 'item': [10, 20], 'rating': [2., 1.]})
A = pd.DataFrame({'a': [1.], 'b': [0.]}, index=[7])


def test_feature_prior_by_hand():
    """min (2 − u − c − 0.5)² + (1 − 2u − c + 0.5)² + (u − 0.5)² + (c − 0.25)²: the normal equations
    [[6, 3], [3, 3]]·(u, c) = (5, 3.25) give u = 5.25/9 = 7/12, c = 4.5/9 = 1/2; the zero-centred prior's right-hand
    side (4.5, 3) gives u = c = 1/2"""
    e = one_factor_export()
    from fastcf.solve import row_prior
    p = row_prior(e)                                             # the premise: mean 0, chol I
    np.testing.assert_allclose(p.mean, [0, 0], atol=1e-12); np.testing.assert_allclose(p.chol, np.eye(2), atol=1e-12)
    prior = fold_in(e, ONE, wd=1., features=A, feature_var=1.)
    np.testing.assert_allclose([prior.user_factors[-1, 0], prior.user_bias[-1]], [7 / 12, 1 / 2], atol=1e-6)
    plain = fold_in(e, ONE, wd=1.)
    np.testing.assert_allclose([plain.user_factors[-1, 0], plain.user_bias[-1]], [1 / 2, 1 / 2], atol=1e-6)
    assert prior.folded.prior.tolist() == ['features'] and plain.folded.prior.tolist() == ['average']


def test_feature_prior_levenberg_marquardt_is_stationary():
    "With a sigmoid the answer is where Σ (s_j − r_j)·s_j'·x_j + wd·(θ − μ) = 0, μ the features' embedding (0.5, 0.25)"
    e = one_factor_export(y_range=(0, 3))
    got = fold_in(e, ONE, wd=1., features=A, feature_var=1.)
    theta = np.array([got.user_factors[-1, 0], got.user_bias[-1]], np.float64)
    x, b = np.array([[1., 1.], [2., 1.]]), np.array([0.5, -0.5])
    s = 3 / (1 + np.exp(-(x @ theta + b)))
    grad = x.T @ ((s - ONE.rating.values) * s * (3 - s) / 3) + (theta - [0.5, 0.25])
    np.testing.assert_allclose(grad, 0, atol=1e-5)
    plain = fold_in(e, ONE, wd=1.)
    assert abs(plain.user_factors[-1, 0] - got.user_factors[-1, 0]) > 1e-3                 # the prior mean moved it


@pytest.mark.parametrize('y_range', [None, (0, 6)])
def test_no_ratings_is_add_users(y_range):
    "IDs in features only, or with features and no ratings, get exactly add_users' row: factors and bias, bit for bit"
    e = with_user_features(planted_export(y_range=y_range))
    feats = feature_frame([20_000, 20_001, 20_002])
    folded, added = fold_in(e, features=feats), e.add_users(feats)
    for k in ('user_factors', 'user_bias'): assert np.array_equal(getattr(folded, k), getattr(added, k)), k
    assert folded.folded.fallback.all() and (folded.folded.prior == 'features').all()
    mixed = fold_in(e, planted_users(e, n_new=3)[0], features=feats)     # three with ratings and no features, three with features only
    assert mixed.folded.prior.tolist() == ['average'] * 3 + ['features'] * 3
    for k in ('user_factors', 'user_bias'): assert np.array_equal(getattr(mixed, k)[-3:], getattr(added, k)[-3:]), k


def test_no_ratings_is_add_users_nn():
    e = with_user_features(nn_export())
    feats = feature_frame([900, 901])
    assert np.array_equal(fold_in(e, features=feats).user_factors, e.add_users(feats).user_factors)


def test_nn_feature_prior_is_the_minimum():
    "The neural model through its MLP: the answer is a local minimum of Σ(pred − r)² + wd·|L⁻¹(θ − μ)|²/f, μ the features' embedding"
    from fastcf.export import run_ops
    e = with_user_features(nn_export())
    r = np.random.default_rng(4)
    frame = pd.DataFrame({'user': 900, 'item': r.choice(60, 8, replace=False), 'rating': r.uniform(1, 5, 8)})
    feats = feature_frame([900])
    got = fold_in(e, frame, wd=2., features=feats, feature_var=0.3, max_iter=500)
    assert got.folded.converged.all()
    p = row_prior(e)
    from fastcf.features import feature_table
    mu = torch.from_numpy(e.user_features.embed(feature_table(feats, 'user'))[0][0]).double()
    items = torch.from_numpy(e.item_factors[frame.item.values + 1]).double()
    ops = [{k: v.astype(np.float64) if isinstance(v, np.ndarray) else v for k, v in o.items()} for o in e.mlp]
    y, chol = torch.tensor(frame.rating.values), torch.from_numpy(p.chol)
    def loss(theta):                                                            # theta [B, 6]
        pred = run_ops(ops, torch.cat([theta[:, None].expand(-1, 8, -1).reshape(-1, 6), items.repeat(len(theta), 1)], 1))[:, 0]
        dev = torch.linalg.solve_triangular(chol, (theta - mu).T, upper=False).T
        return ((pred.view(-1, 8) - y) ** 2).sum(1) + 2. * (dev ** 2).sum(1) / 0.3
    theta = torch.from_numpy(got.user_factors[-1]).double()
    steps = torch.from_numpy(r.normal(0, 1e-3, (200, 6)))
    best = loss(theta[None])[0]
    # a local minimum (the ReLUs make the loss only piecewise smooth, so no gradient test): no nearby point is lower
    assert (loss(theta + steps) >= best - 1e-6).all()
    plain = fold_in(e, frame, wd=2., max_iter=500)
    assert np.abs(plain.user_factors[-1] - got.user_factors[-1]).max() > 0.05   # the features moved it


def test_many_ratings_converge_to_plain_fold_in():
    "With a fixed wd the prior's pull is wd/(n + wd): 400 ratings leave a tenth of 40 ratings' gap to the plain fold-in"
    e = with_user_features(planted_export(n_items=500))
    gap = {}
    for n in (40, 400):
        frame, _ = planted_users(e, n_new=20, per_user=n)
        feats = feature_frame(frame.user.unique())
        prior, plain = fold_in(e, frame, wd=5., features=feats), fold_in(e, frame, wd=5.)
        gap[n] = np.abs(rows_of(prior, 20) - rows_of(plain, 20)).max()
    assert gap[400] < 0.15 * gap[40] and gap[400] < 0.03, gap


def test_feature_prior_beats_both_on_planted_users():
    "Users whose features embed near their true row: 3 ratings plus features beat 3 ratings alone and features alone"
    e = planted_export(n_items=500)
    frame, truth = planted_users(e, n_new=200, per_user=40, noise=0.3)
    r = np.random.default_rng(9)
    from fastcf.features import SideFeatures
    feats = pd.DataFrame(np.eye(200, dtype=np.float32), index=frame.user.unique(), columns=[f'f{j}' for j in range(200)])
    noisy = truth + r.normal(0, 0.25, truth.shape)                    # each user's one feature embeds to its row plus noise
    h = CollabExport('dot', 'user', 'item', e.users, e.items, e.user_factors, e.item_factors, e.user_bias, e.item_bias,
                     user_features=SideFeatures(list(feats.columns), noisy[:, :-1], noisy[:, -1]))
    seen = frame.groupby('user').head(3)
    test = frame.drop(seen.index)
    err = lambda exp: float(np.sqrt(np.mean((predict(exp, test) - test.rating.values) ** 2)))
    both, ratings, features = err(fold_in(h, seen, features=feats)), err(fold_in(h, seen)), err(fold_in(h, features=feats))
    assert both < 0.95 * min(ratings, features), (both, ratings, features)


def test_feature_prior_bad_input(planted):
    frame = planted_users(planted, n_new=2)[0]
    with pytest.raises(FoldInError, match="features= needs a hybrid export with user features; this one has none"):
        fold_in(planted, frame, features=feature_frame([10_000]))
    e = with_user_features(planted)
    with pytest.raises(FoldInError, match="needs a hybrid export with item features"):
        fold_in(e, frame.rename(columns={'user': 'item', 'item': 'user'}).assign(item=lambda d: d.item + 5000), side='item',
                features=feature_frame([15_000]))
    with pytest.raises(FoldInError, match="unknown: \\['g0'\\]; missing: \\['f0'\\]"):
        fold_in(e, frame, features=feature_frame([10_000]).rename(columns={'f0': 'g0'}))
    with pytest.raises(FoldInError, match="NaN or infinite"):
        fold_in(e, frame, features=feature_frame([10_000]).replace(0., np.nan))
    with pytest.raises(FoldInError, match="indexed by str IDs"):
        fold_in(e, frame, features=feature_frame(['u1']))
    with pytest.raises(FoldInError, match=r"1 user ID\(s\) are already in the model, e\.g\. \[5\]"):
        fold_in(e, frame, features=feature_frame([5]))
    with pytest.raises(FoldInError, match="duplicate ID"):
        fold_in(e, frame, features=feature_frame([10_000, 10_000]))
    with pytest.raises(FoldInError, match="must be a DataFrame indexed by ID"):
        fold_in(e, frame, features=np.ones((1, 6)))


# --- the split: fastcf.solve holds the prior and the solver

def test_the_priors_error_is_a_foldin_error():
    import fastcf.solve
    with pytest.raises(FoldInError, match="the model has no trained users"):            # the prior's error is fold-in's error
        fastcf.solve.row_prior(CollabExport('dot', 'user', 'item', Vocab([], 1, 'user'), Vocab([1, 2], 1, 'item'),
                                            np.zeros((1, 2)), np.ones((3, 2)), np.zeros(1), np.zeros(3)))


# --- fastai is not needed

def test_fold_in_without_fastai():
    code = textwrap.dedent('''
        import sys, importlib.abc
        class _NoFastai(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == 'fastai' or name.startswith('fastai.'): raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        sys.meta_path.insert(0, _NoFastai())
        import numpy as np, pandas as pd
        from fastcf.models import EmbeddingDotBias
        from fastcf.export import CollabExport
        from fastcf.foldin import fold_in
        m = EmbeddingDotBias.from_classes(4, {'u': ['#na#', 1, 2, 3], 'i': ['#na#', 'a', 'b']}, y_range=(0, 5))
        e = fold_in(CollabExport.from_model(m, m.classes), pd.DataFrame({'u': [9, 9], 'i': ['a', 'b'], 'r': [4., 2.]}))
        print(e.user_ids.tolist(), 'fastai' in sys.modules)
    ''')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['[1,', '2,', '3,', '9]', 'False']


# --- real data (slower): MovieLens-100k, n = 20, against the average user and the item-bias-only prediction

@pytest.mark.slow
def test_movielens_fold_in_beats_baselines(ml100k):
    from fastai.torch_core import set_seed
    from fastcf.learner import collab_learner, CollabDataLoaders
    from fastcf.export import from_learner
    df = ml100k[['user', 'movie', 'rating']]
    r = np.random.default_rng(0)
    held_users = r.choice(df.user.unique(), 94, replace=False)
    known, held = df[~df.user.isin(held_users)], df[df.user.isin(held_users)]
    set_seed(0, reproducible=True)
    dls = CollabDataLoaders.from_df(known, valid_pct=0.05, bs=1024, seed=0)
    learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(4, 1e-2, wd=0.1)
    exp = from_learner(learn)
    held = held[held.movie.isin(exp.item_ids)].sample(frac=1, random_state=0)
    held = held.assign(pos=held.groupby('user').cumcount())
    test = held[held.pos >= 20]
    folded = fold_in(exp, held[held.pos < 20][['user', 'movie', 'rating']])
    average = fold_in(exp, ids=held_users)
    p = row_prior(exp)
    item_bias_only = sigmoid_range(torch.from_numpy(p.mean[-1] + exp.item_bias[exp.items.rows(test.movie)].astype(np.float64)), 0, 5.5).numpy()
    err = lambda pred: float(np.sqrt(np.mean((pred - test.rating.values) ** 2)))
    ours, avg, bias = err(predict(folded, test)), err(predict(average, test)), err(item_bias_only)
    print(f"ML-100k n=20: fold-in {ours:.4f}, average user {avg:.4f}, item bias only {bias:.4f}")
    assert ours < 0.97 * avg and ours < 0.95 * bias
