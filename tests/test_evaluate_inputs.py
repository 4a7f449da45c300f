"""`fastcf.evaluate` on the inputs that used to give a wrong number without an error, and its metrics on real data
(MovieLens-100k) against a plain-Python reference written here, one user at a time.

Each test names the issue item it covers. Expected values are worked by hand in the comments, or come from the loop
reference `reference_metrics`, never from the code under test."""
import math, re
import numpy as np, pandas as pd, pytest
from fastcf.evaluate import (split_by_user, precision_at_k, recall_at_k, ndcg_at_k, map_at_k, map_all_at_k, mrr_at_k,
                             hit_rate_at_k, ranking_metrics, per_user_metrics, coverage, rmse)


# ---- 1. rmse: two frames are joined on (user, item); one frame needs its columns named; NaN is explicit ----

@pytest.fixture
def true_pred():
    true = pd.DataFrame({'user': [1, 1, 2, 3], 'item': [10, 20, 10, 30], 'rating': [4., 3., 5., 1.]})
    # the same pairs, rows in another order; errors: (1,10) +1, (1,20) -2, (2,10) 0, (3,30) +1 → √((1 + 4 + 0 + 1)/4) = √1.5
    pred = pd.DataFrame({'user': [3, 2, 1, 1], 'item': [30, 10, 20, 10], 'prediction': [2., 5., 1., 5.]})
    return true, pred


def test_rmse_joins_two_frames_on_user_and_item(true_pred):
    true, pred = true_pred
    assert rmse(true, pred) == pytest.approx(math.sqrt(1.5))
    assert rmse(true, pred.sample(frac=1, random_state=3)) == pytest.approx(math.sqrt(1.5))
    assert rmse(true, pred.rename(columns={'prediction': 'rating'})) == pytest.approx(math.sqrt(1.5))
    # named columns, other names for the IDs
    renamed = dict(user='u', item='i')
    assert rmse(true.rename(columns=renamed), pred.rename(columns=renamed), true_col='rating', pred_col='prediction',
                user_name='u', item_name='i') == pytest.approx(math.sqrt(1.5))


def test_rmse_pairs_in_one_frame_only(true_pred):
    true, pred = true_pred
    with pytest.raises(ValueError, match=r"1 pairs only in true, e.g. \(2, 10\)"): rmse(true, pred[pred.user != 2])
    with pytest.raises(ValueError, match=r"1 pairs only in predicted, e.g. \(4, 40\)"):
        rmse(true, pd.concat([pred, pd.DataFrame({'user': [4], 'item': [40], 'prediction': [3.]})]))
    # dropping (2, 10), whose error is 0: √((1 + 4 + 1)/3) = √2
    assert rmse(true, pred[pred.user != 2], unmatched='drop') == pytest.approx(math.sqrt(2))


def test_rmse_one_frame_needs_named_columns(true_pred):
    true, pred = true_pred
    both = true.merge(pred, on=['user', 'item']).assign(row_id=[999_999_999] * 4)   # a trailing non-rating column
    with pytest.raises(ValueError, match='name the columns'): rmse(both)
    assert rmse(both, true_col='rating', pred_col='prediction') == pytest.approx(math.sqrt(1.5))
    with pytest.raises(TypeError, match='a DataFrame and an array'): rmse(true, pred['prediction'])


def test_rmse_nan(true_pred):
    true, pred = true_pred
    with_nan = pred.assign(prediction=[2., np.nan, 1., 5.])                 # the prediction of (2, 10) is missing
    with pytest.raises(ValueError, match=r"1 NaN ratings \(true or predicted\), at \(2, 10\)"): rmse(true, with_nan)
    assert rmse(true, with_nan, nan_policy='omit') == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match='1 NaN ratings'): rmse([1., 2.], [np.nan, 2.])
    with pytest.raises(ValueError, match='no ratings to compare'): rmse([np.nan], [1.], nan_policy='omit')


# ---- a small worked example for the ranking metrics ----

@pytest.fixture
def small():
    # user 1: list 10, 20, 30, 40; user 2: list 10, 50; user 3 gets nothing
    recs = pd.DataFrame({'user': [1, 1, 1, 1, 2, 2], 'item': [10, 20, 30, 40, 10, 50],
                         'score': [.9, .8, .7, .6, .9, .8], 'rank': [1, 2, 3, 4, 1, 2]})
    held = pd.DataFrame({'user': [1, 1, 1, 2, 3], 'item': [30, 40, 60, 50, 10], 'rating': [2., 5., 4., 3., 5.]})
    return recs, held


def test_both_maps_mrr_and_graded_ndcg_by_hand(small):
    """2. k = 4. u1 (relevant 30, 40, 60) finds 30 at rank 3 and 40 at rank 4; u2 (relevant 50) finds it at rank 2; u3 has no list.
    AP ÷ min(|R|, k): u1 (1/3 + 2/4)/3 = 5/18, u2 (1/2)/1 = 1/2, u3 0 → (5/18 + 1/2)/3 = 7/27; ÷ |R| is the same (no |R| > k).
    MRR@4: (1/3 + 1/2 + 0)/3 = 5/18; at k = 2 only u2 has a hit: (1/2)/3 = 1/6.
    graded NDCG@4: u1 (2/log₂4 + 5/log₂5) / (5 + 4/log₂3 + 2/log₂4); u2 (3/log₂3) / 3; u3 0."""
    recs, held = small
    m = ranking_metrics(recs, held, k=4)
    assert m['map'] == pytest.approx(7 / 27)
    assert m['map_all'] == pytest.approx(7 / 27)
    assert m['mrr'] == pytest.approx(5 / 18)
    assert mrr_at_k(recs, held, k=4) == pytest.approx(5 / 18)
    assert mrr_at_k(recs, held, k=2) == pytest.approx(1 / 6)
    u1 = (2 / math.log2(4) + 5 / math.log2(5)) / (5 + 4 / math.log2(3) + 2 / math.log2(4))
    u2 = (3 / math.log2(3)) / 3
    assert ndcg_at_k(recs, held, k=4, graded=True) == pytest.approx((u1 + u2 + 0) / 3)
    assert ranking_metrics(recs, held, k=4, graded=True)['ndcg'] == pytest.approx((u1 + u2 + 0) / 3)
    # binary NDCG is unchanged by graded=False: u1 (1/log₂4 + 1/log₂5) / (1 + 1/log₂3 + 1/log₂4), u2 (1/log₂3) / 1
    b1 = (1 / math.log2(4) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert ndcg_at_k(recs, held, k=4) == pytest.approx((b1 + 1 / math.log2(3)) / 3)


def test_maps_differ_when_more_relevant_than_k(small):
    """2. at k = 3, u1 has 3 relevant items → same; make u1 have 4 relevant items (add 70): at k = 3 u1's single hit at
    rank 3 gives 1/3, ÷ min(4, 3) = 1/9 for map_at_k, ÷ 4 = 1/12 for map_all_at_k; u2 (1/2); u3 0."""
    recs, held = small
    held = pd.concat([held, pd.DataFrame({'user': [1], 'item': [70], 'rating': [1.]})], ignore_index=True)
    assert map_at_k(recs, held, k=3) == pytest.approx((1 / 9 + 1 / 2) / 3)
    assert map_all_at_k(recs, held, k=3) == pytest.approx((1 / 12 + 1 / 2) / 3)


def test_per_user_frame(small):
    recs, held = small
    per_user = per_user_metrics(recs, held, k=4)
    assert per_user.columns.tolist() == ['user', 'n_relevant', 'n_hits', 'precision', 'recall', 'ndcg', 'map', 'map_all',
                                         'mrr', 'hit_rate']
    assert per_user.user.tolist() == [1, 2, 3]
    assert per_user.n_hits.tolist() == [2, 1, 0]
    assert per_user.precision.tolist() == pytest.approx([2 / 4, 1 / 4, 0])
    assert per_user.recall.tolist() == pytest.approx([2 / 3, 1, 0])
    assert per_user.mrr.tolist() == pytest.approx([1 / 3, 1 / 2, 0])


# ---- 3. ID types ----

def test_id_types_that_cannot_match_are_an_error(small):
    recs, held = small
    # strings held as objects against integers held as objects: the old check saw two object columns and returned 0
    with pytest.raises(TypeError, match=r"'item' holds strings in recs \(object, e.g. '10'\) but integers in heldout \(object"):
        precision_at_k(recs.astype({'item': str}).astype({'item': object}), held.astype({'item': object}), k=4)
    with pytest.raises(TypeError, match=r"'user' holds integers in recs \(int64, e.g. 1\) but strings in heldout"):
        precision_at_k(recs, held.astype({'user': str}), k=4)
    # leading zeros: '010' read as text on one side, 10 read as a number on the other
    padded = recs.assign(item=recs.item.map(lambda i: f"{i:03d}"))
    with pytest.raises(TypeError, match=r"'item' holds strings in recs \(str, e.g. '010'\) but integers in heldout \(int64, e.g. 30\)"):
        recall_at_k(padded, held, k=4)
    with pytest.raises(TypeError, match="mixes kinds of IDs"):
        recall_at_k(recs, held.astype({'item': object}).assign(item=[30, 40, '60', 50, 10]), k=4)


def test_object_integers_match_integers(small):
    recs, held = small
    # precision@4 by hand: u1 2/4, u2 1/4, u3 0 → 1/4
    assert precision_at_k(recs, held.astype({'user': object, 'item': object}), k=4) == pytest.approx(1 / 4)
    assert precision_at_k(recs.astype({'item': object}), held, k=4) == pytest.approx(1 / 4)


# ---- 4. repeated pairs ----

def test_repeated_recommendations_are_an_error(small):
    recs, held = small
    with pytest.raises(ValueError, match=r"recs has 6 repeated \(user, item\) pairs, e.g. \(1, 10\)"):
        recall_at_k(pd.concat([recs, recs]), held, k=5)
    with pytest.raises(ValueError, match=r"heldout has 1 repeated \(user, item\) pairs, e.g. \(1, 40\)"):
        recall_at_k(recs, pd.concat([held, held.iloc[[1]].assign(rating=1.)]), k=5)


def test_per_user_rows_are_what_the_means_average():
    "On random lists: every per-user number is a fraction in [0, 1], and their means are exactly ranking_metrics' values"
    rng = np.random.default_rng(1)
    recs = pd.DataFrame([(u, i, 1 - r / 10, r + 1) for u in range(40) for r, i in enumerate(rng.choice(30, 8, replace=False))],
                        columns=['user', 'item', 'score', 'rank'])
    held = pd.DataFrame([(u, i, float(rng.integers(1, 6))) for u in range(40) for i in rng.choice(30, rng.integers(1, 12), replace=False)],
                        columns=['user', 'item', 'rating'])
    names = ['precision', 'recall', 'ndcg', 'map', 'map_all', 'mrr', 'hit_rate']
    for k in (1, 5, 10):
        for graded in (False, True):
            per_user = per_user_metrics(recs, held, k=k, graded=graded)
            means = ranking_metrics(recs, held, k=k, graded=graded)
            assert len(per_user) == means['n_users'] == 40
            assert per_user.precision.tolist() == pytest.approx((per_user.n_hits / k).tolist())
            assert per_user.recall.tolist() == pytest.approx((per_user.n_hits / per_user.n_relevant).tolist())
            assert per_user.hit_rate.tolist() == (per_user.n_hits > 0).astype(float).tolist()
            for name in names: assert per_user[name].mean() == pytest.approx(means[name], rel=1e-12), (k, graded, name)
            values = per_user[names].to_numpy()
            assert ((values >= 0) & (values <= 1 + 1e-12)).all()


# ---- 5. missing IDs ----

def test_missing_item_in_heldout_is_an_error_not_a_hit():
    # u1 held out b; u2 held out c and a NaN. The old pair keys (user code × items + item code, NaN coded -1) put u2's NaN
    # on u1's c, so u1's recommended c became a hit: precision (2/3 + 0)/2 = 1/3 instead of (1/3 + 0)/2 = 1/6
    recs = pd.DataFrame({'user': ['u1'] * 3 + ['u2'] * 3, 'item': list('abc') + list('def'), 'rank': [1, 2, 3] * 2})
    held = pd.DataFrame({'user': ['u1', 'u2', 'u2'], 'item': ['b', 'c', None]})
    with pytest.raises(ValueError, match=r"heldout has 1 missing values in 'item', in rows \[2\]"): precision_at_k(recs, held, k=3)
    assert precision_at_k(recs, held.iloc[:2], k=3) == pytest.approx(1 / 6)


def test_missing_user_is_an_error(small):
    recs, held = small
    with_nan = held.assign(user=[1., 1., np.nan, 2., 3.])
    with pytest.raises(ValueError, match=r"heldout has 1 missing values in 'user', in rows \[2\]"): ranking_metrics(recs, with_nan, k=4)
    with pytest.raises(ValueError, match=r"df has 1 missing values in 'user', in rows \[2\]"): split_by_user(with_nan, n=1)
    with pytest.raises(ValueError, match=r"recs has 1 missing values in 'item', in rows \[0\]"):
        hit_rate_at_k(recs.assign(item=[np.nan, 20, 30, 40, 10, 50]), held, k=4)


# ---- 6. coverage: a number of any numeric type is a size ----

def test_coverage_numeric_sizes(small):
    recs, _ = small
    # top-2 lists: 10, 20 (u1) and 10, 50 (u2): 3 distinct items of a 10-item catalogue
    for size in (10, 10.0, np.int32(10), np.float64(10)):
        assert coverage(recs, size, k=2) == pytest.approx(3 / 10)
    for bad, message in ((10.5, 'whole number of items, got 10.5'), (0, 'at least one item'), (-3.0, 'at least one item'),
                         (float('inf'), 'whole number of items')):
        with pytest.raises(ValueError, match=message): coverage(recs, bad, k=2)
    assert coverage(recs, [10, 20, 30, 40, 50, 60], k=2) == pytest.approx(3 / 6)


# ---- 2. on real data: MovieLens-100k, a popularity recommender, every metric against a loop reference ----

def reference_metrics(recs, held, k, relevance):
    "Every metric, one user at a time with dicts and sorted lists: the definitions of Recommenders' python_evaluation."
    relevant = {}
    for u, i, r in held[['user', 'movie', 'rating']].itertuples(index=False):
        if r >= relevance: relevant.setdefault(u, {})[i] = r
    lists = {}
    for u, i, rank in recs[['user', 'movie', 'rank']].itertuples(index=False): lists.setdefault(u, []).append((rank, i))
    sums = dict(precision=0., recall=0., ndcg=0., ndcg_graded=0., map=0., map_all=0., mrr=0., hit_rate=0.)
    for u, rel in relevant.items():
        top = [i for _, i in sorted(lists.get(u, []))[:k]]
        hits = [pos for pos, i in enumerate(top, 1) if i in rel]
        sums['precision'] += len(hits) / k
        sums['recall'] += len(hits) / len(rel)
        sums['ndcg'] += sum(1 / math.log2(1 + p) for p in hits) / sum(1 / math.log2(1 + p) for p in range(1, min(len(rel), k) + 1))
        ideal = sorted(rel.values(), reverse=True)[:k]
        sums['ndcg_graded'] += (sum(rel[top[p - 1]] / math.log2(1 + p) for p in hits)
                                / sum(g / math.log2(1 + p) for p, g in enumerate(ideal, 1)))
        precisions = sum(n / p for n, p in enumerate(hits, 1))
        sums['map'] += precisions / min(len(rel), k)
        sums['map_all'] += precisions / len(rel)
        sums['mrr'] += 1 / hits[0] if hits else 0
        sums['hit_rate'] += bool(hits)
    return {name: total / len(relevant) for name, total in sums.items()}, len(relevant)


def test_movielens_against_reference(ml100k):
    train, held = split_by_user(ml100k[['user', 'movie', 'rating']], n=10, seed=0)
    popular = train.movie.value_counts().index[:80].to_numpy()
    seen = set(zip(train.user, train.movie))
    rows = []
    for u in train.user.unique():
        unseen = [m for m in popular if (u, m) not in seen][:20]
        rows += [(u, m, 20. - r, r + 1) for r, m in enumerate(unseen)]
    recs = pd.DataFrame(rows, columns=['user', 'movie', 'score', 'rank'])
    for k, relevance in ((5, 4), (10, 4), (20, 1)):
        expected, n_users = reference_metrics(recs, held, k, relevance)
        ours = ranking_metrics(recs, held, k=k, relevance=relevance)
        graded = ranking_metrics(recs, held, k=k, relevance=relevance, graded=True)
        assert ours['n_users'] == n_users
        for name in ('precision', 'recall', 'ndcg', 'map', 'map_all', 'mrr', 'hit_rate'):
            assert ours[name] == pytest.approx(expected[name], rel=1e-9), name
        assert graded['ndcg'] == pytest.approx(expected['ndcg_graded'], rel=1e-9)
        if k < 10: assert 0 < ours['map_all'] < ours['map']      # some users have more than k relevant items
        else: assert ours['map_all'] == pytest.approx(ours['map'])   # with 10 held out, nobody has more than k
    # the frames the CLI writes: recommendations read back with string IDs would not match integers
    with pytest.raises(TypeError, match='no ID could match'): ranking_metrics(recs.astype({'movie': str}), held, k=5)


# ---- 7. issue 12: one popularity baseline in fastcf.evaluate (ties by item ID), the metrics still importable from evaluate ----

def test_popularity_ties_go_to_the_lower_item_id_whatever_the_row_order():
    # z, b and m have 2 training rows each, q has 1: by count then ID the order is b, m, z, q.
    # The baselines before issue 12 (fastcf.implicit's and the CLI's) kept first appearance: z, b, m, q.
    train = pd.DataFrame({'user': [1, 1, 2, 2, 3, 3, 4], 'item': ['z', 'b', 'm', 'z', 'b', 'm', 'q']})
    from fastcf.evaluate import popularity_recs
    for rows in (train, train.iloc[::-1], train.sample(frac=1, random_state=3)):
        recs = popularity_recs(rows, [9, 1], k=4)
        assert recs.values.tolist() == [[9, 'b', 2., 1], [9, 'm', 2., 2], [9, 'z', 2., 3], [9, 'q', 1., 4],
                                        [1, 'm', 2., 1], [1, 'q', 1., 2]]          # user 1 saw z and b


def test_popularity_matches_a_plain_python_reference_on_movielens(ml100k):
    from collections import Counter
    from fastcf.evaluate import popularity_recs
    train, held = split_by_user(ml100k[['user', 'movie', 'rating']], n=5, seed=1)
    counts = Counter(train.movie.tolist())
    ranked = sorted(counts, key=lambda m: (-counts[m], m))          # count descending, then movie ID ascending
    seen = train.groupby('user').movie.agg(set).to_dict()
    users = list(held.user.unique()[:40]) + [10_000]                  # and one user with no training row
    expected = []
    for u in users:
        unseen = [m for m in ranked if m not in seen.get(u, set())][:20]
        expected += [[u, m, float(counts[m]), r + 1] for r, m in enumerate(unseen)]
    ours = popularity_recs(train, users, k=20, user_name='user', item_name='movie')
    assert ours.columns.tolist() == ['user', 'movie', 'score', 'rank']
    assert ours.values.tolist() == expected


def test_popularity_bad_inputs_name_the_problem():
    from fastcf.evaluate import popularity_recs
    train = pd.DataFrame({'user': ['a', 'a', 'b'], 'item': [1, 2, 1]})
    with pytest.raises(TypeError, match="'user' holds integers in users"): popularity_recs(train, [1, 2])
    with pytest.raises(ValueError, match=r'k must be a positive integer \(at least 1\), got 0'): popularity_recs(train, ['a'], k=0)
    with pytest.raises(ValueError, match="train has no column 'movie'"): popularity_recs(train, ['a'], item_name='movie')
    with pytest.raises(ValueError, match="train has 1 missing values in 'user'"):
        popularity_recs(train.assign(user=['a', None, 'b']), ['a'])


def test_metrics_are_importable_from_evaluate_as_before():
    import fastcf.evaluate, fastcf.metrics
    names = ['precision_at_k', 'recall_at_k', 'ndcg_at_k', 'map_at_k', 'map_all_at_k', 'mrr_at_k', 'hit_rate_at_k',
             'ranking_metrics', 'per_user_metrics']
    for name in names:
        assert getattr(fastcf.evaluate, name) is getattr(fastcf.metrics, name), name
    star = {}
    exec('from fastcf.evaluate import *', star)
    assert set(names + ['split_by_user', 'coverage', 'rmse', 'popularity_recs']) <= set(star)


def test_evaluate_metrics_and_baseline_run_where_fastai_cannot_be_imported():
    import subprocess, sys, textwrap
    code = textwrap.dedent('''
        import sys, importlib.abc
        class _NoFastai(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == 'fastai' or name.startswith('fastai.'): raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        sys.meta_path.insert(0, _NoFastai())
        import pandas as pd
        from fastcf.evaluate import popularity_recs, ranking_metrics, split_by_user
        ratings = pd.DataFrame({'user': [1, 1, 1, 2, 2, 2, 3, 3], 'item': [1, 2, 3, 1, 2, 4, 1, 3], 'rating': 4.})
        train, held = split_by_user(ratings, n=1, seed=0)
        print(ranking_metrics(popularity_recs(train, held.user.unique(), k=2), held, k=2)['n_users'], 'fastai' in sys.modules)
    ''')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['3', 'False']


# ---- 8. a recommendation frame without the expected columns: the error names the column, not `IndexError: index 0` ----

RECS = pd.DataFrame({'user': [1, 1, 2], 'item': [10, 20, 10], 'score': [.9, .5, .7], 'rank': [1, 2, 1]})
HELD = pd.DataFrame({'user': [1, 2], 'item': [20, 30], 'rating': [4., 5.]})
METRICS = {f.__name__: f for f in (precision_at_k, recall_at_k, ndcg_at_k, map_at_k, map_all_at_k, mrr_at_k, hit_rate_at_k,
                                   ranking_metrics, per_user_metrics)}

@pytest.mark.parametrize('metric', list(METRICS))
@pytest.mark.parametrize('recs, message', [
    (RECS[[]], "recs has 0 column(s) [], but column 1 is read by position"),
    (RECS[['user']], "recs has 1 column(s) ['user'], but column 2 is read by position"),
], ids=['no columns', 'one column'])
def test_metrics_name_the_missing_column(metric, recs, message):
    with pytest.raises(ValueError, match=re.escape(message)): METRICS[metric](recs, HELD, k=2)

@pytest.mark.parametrize('metric', list(METRICS))
def test_metrics_name_a_named_column_that_is_not_there(metric):
    with pytest.raises(ValueError, match=re.escape("recs has no column 'movie'; its columns are ['user', 'item', 'score', 'rank']")):
        METRICS[metric](RECS, HELD.rename(columns={'item': 'movie'}), k=2, item_name='movie')

def test_coverage_and_the_helpers_name_the_missing_column():
    from fastcf.evaluate import popularity_recs
    with pytest.raises(ValueError, match=re.escape("recs has 1 column(s) ['user'], but column 2 is read by position")):
        coverage(RECS[['user']], 10)
    with pytest.raises(ValueError, match=re.escape("recs has no column 'movie'")):                # was a bare KeyError
        coverage(RECS, 10, item_name='movie')
    with pytest.raises(ValueError, match=re.escape("df has 0 column(s) []")): split_by_user(HELD[[]], n=1)
    with pytest.raises(ValueError, match=re.escape("train has 1 column(s) ['user']")): popularity_recs(HELD[['user']], [1])
    with pytest.raises(ValueError, match=re.escape("true has 1 column(s) ['user']")): rmse(HELD[['user']], HELD)

def test_the_metrics_still_count_with_the_columns_present():
    # user 1: top 2 is 10, 20; held-out {20}: one hit in 2 slots. user 2: top 2 is 10; held-out {30}: none. (1/2 + 0) / 2
    assert precision_at_k(RECS, HELD, k=2) == pytest.approx(0.25)
