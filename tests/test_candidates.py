"""Per-user candidates and `fill='popular'` end to end, at sizes the notebook pages leave out: the neural model's
candidates against a float64 brute force on exports with exact ties (integer and string IDs, many chunks, both sides of
the sparse/dense crossover), and `fill='popular'` streamed to Parquet/CSV equal to the in-memory result."""
import copy
import numpy as np, pandas as pd, pytest, torch
from fastcf.testing import random_export
from fastcf.predict import recommend
from fastcf.candidates import PairSet, sparse_is_cheaper
from fastcf.testing import check_ranking_frame
from conftest import dense_reference

torch.set_num_threads(1)
try: import pyarrow.parquet as pq
except ImportError: pq = None
needs_pyarrow = pytest.mark.skipif(pq is None, reason='needs pyarrow')
FORMATS = [pytest.param('recs.parquet', marks=needs_pyarrow), 'recs.csv']


def int_valued_nn(ids:str, seed:int=0):
    "A 300 × 120 neural export with integer-valued factors and weights: its keys are exact integers, full of ties"
    e = random_export(n_users=300, n_items=120, n_factors=6, kind='nn', layers=(12, 6), ids=ids, seed=seed)
    e.user_factors[:] = np.round(e.user_factors * 2); e.item_factors[:] = np.round(e.item_factors * 2)
    for o in e.mlp:
        if o['op'] == 'linear':
            o['weight'] = np.round(o['weight'] * 2)
            if o['bias'] is not None: o['bias'] = np.round(o['bias'] * 4)
        if o['op'] == 'affine': o['scale'], o['shift'] = np.ones_like(o['scale']), np.round(o['shift'] * 10)
    return e


def dense_keys(e) -> np.ndarray:
    "The MLP before its final sigmoid, for every (user, item) pair of real rows, in float64"
    u, v = e.user_factors[1:].astype(np.float64), e.item_factors[1:].astype(np.float64)
    h = np.concatenate([np.repeat(u, len(v), 0), np.tile(v, (len(u), 1))], 1)
    for o in e.mlp:
        if o['op'] == 'linear': h = h @ o['weight'].T.astype(np.float64) + (0 if o['bias'] is None else o['bias'])
        elif o['op'] == 'relu': h = np.maximum(h, 0)
        elif o['op'] == 'affine': h = h * o['scale'] + o['shift']
    return h.reshape(len(u), len(v))


def brute_force(e, k, allowed, exclude=None) -> list:
    "[user ID, item ID, rank] of each user's top `k` allowed pairs: dense keys, mask, stable sort by (-key, item row)"
    keys = dense_keys(e)
    ok = np.zeros(keys.shape, bool)
    ok[e.users.rows(allowed.user) - 1, e.items.rows(allowed.item) - 1] = True
    if exclude is not None: ok[e.users.rows(exclude.user) - 1, e.items.rows(exclude.item) - 1] = False
    keys = np.where(ok, keys, -np.inf)
    out = []
    for a in range(len(keys)):
        order = [j for j in np.argsort(-keys[a], kind='stable') if keys[a, j] > -np.inf][:k]
        out += [[e.user_ids[a], e.item_ids[j], r + 1] for r, j in enumerate(order)]
    return out


@pytest.mark.parametrize('ids', ['int', 'str'])
@pytest.mark.parametrize('share', [0.03, 0.9])            # well below and well above the neural crossover
def test_nn_candidates_equal_the_brute_force_with_ties(ids, share):
    e = int_valued_nn(ids)
    keys = dense_keys(e)
    assert np.array_equal(keys, np.round(keys)) and len(np.unique(keys)) < keys.size / 20      # exact, and full of ties
    rng = np.random.default_rng(1)
    n = int(share * 300 * 120)
    allowed = pd.DataFrame({'user': e.user_ids[rng.integers(0, 300, n)], 'item': e.item_ids[rng.integers(0, 120, n)]})
    exclude = pd.DataFrame({'user': e.user_ids[rng.integers(0, 300, 2000)], 'item': e.item_ids[rng.integers(0, 120, 2000)]})
    assert sparse_is_cheaper('nn', len(PairSet(e, allowed).items), 300, 120) == (share < 0.1)
    for kw in (dict(), dict(exclude=exclude)):
        got = recommend(e, k=7, candidates=allowed, chunk_bytes=10 * 120 * 16, **kw)     # 16 users per chunk: 19 chunks
        assert got[['user', 'item', 'rank']].values.tolist() == brute_force(e, 7, allowed, **kw)
        ref = e.score_rows(e.users.rows(got.user), e.items.rows(got.item))
        np.testing.assert_allclose(got.score.values, ref, atol=1e-4)


def popular_export(ids:str):
    e = random_export(n_users=60, n_items=40, ids=ids, seed=2)
    e.item.counts = np.concatenate([[0], np.arange(40) % 5])        # ties in popularity
    return e


@pytest.mark.parametrize('name', FORMATS)
@pytest.mark.parametrize('ids', ['int', 'str'])
@pytest.mark.parametrize('score', ['model', 'interaction'])
def test_fill_popular_streams_to_out_as_in_memory(tmp_path, name, ids, score):
    e = popular_export(ids)
    rng = np.random.default_rng(3)
    allowed = pd.DataFrame({'user': e.user_ids[rng.integers(0, 60, 150)], 'item': e.item_ids[rng.integers(0, 40, 150)]})
    exclude = pd.DataFrame({'user': e.user_ids[rng.integers(0, 60, 400)], 'item': e.item_ids[rng.integers(0, 40, 400)]})
    kw = dict(k=8, candidates=allowed, exclude=exclude, exclude_items=e.item_ids[:3], fill='popular', score=score,
              chunk_bytes=10 * 40 * 7)                               # 7 users per chunk
    mem = recommend(e, **kw)
    assert mem.filled.any() and not mem.filled.all() and (mem.groupby('user').size() == 8).all()
    path = recommend(e, out=tmp_path / name, **kw)
    back = pd.read_parquet(path) if name.endswith('.parquet') else pd.read_csv(path, dtype={'user': mem.user.dtype, 'item': mem.item.dtype})
    assert back.columns.tolist() == ['user', 'item', 'score', 'rank', 'filled']
    assert back[['user', 'item', 'rank', 'filled']].values.tolist() == mem[['user', 'item', 'rank', 'filled']].values.tolist()
    np.testing.assert_allclose(back.score.values, mem.score.values, rtol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [name]             # no temporaries left


@needs_pyarrow
@pytest.mark.parametrize('ids,types', [('int', ['int64', 'int64', 'float', 'int64', 'bool']),
                                       ('str', ['string', 'string', 'float', 'int64', 'bool'])])
def test_fill_popular_with_no_rows_writes_the_typed_schema(tmp_path, ids, types):
    e = popular_export(ids)
    path = recommend(e, users=[], fill='popular', out=tmp_path / 'none.parquet')
    assert pq.read_schema(path).names == ['user', 'item', 'score', 'rank', 'filled']
    assert [str(t) for t in pq.read_schema(path).types] == types
    assert pd.read_parquet(path).empty
    assert recommend(e, users=[], fill='popular', out=tmp_path / 'none.csv').read_text() == 'user,item,score,rank,filled\n'


@pytest.mark.parametrize('name', FORMATS)
def test_fill_popular_bad_input_writes_nothing(tmp_path, name):
    e = popular_export('int')
    with pytest.raises(KeyError, match=r'\[777\]'): recommend(e, users=[1, 777], fill='popular', out=tmp_path / name)
    no_counts = copy.copy(e); no_counts.item.counts = None
    with pytest.raises(ValueError, match='item_counts'): recommend(no_counts, fill='popular', out=tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('kind', ['dot', 'nn'])
def test_pairs_path_ignores_an_excluded_item_outside_items(kind, monkeypatch):
    "An excluded pair naming an item above every candidate and every `items=` row is ignored, as on the dense path"
    e = random_export(100, 50, 4, kind=kind, seed=0)
    cand = pd.DataFrame({'user': [0, 0, 1], 'item': [1, 2, 3]})
    ex = pd.DataFrame({'user': [0], 'item': [49]})                # item 49: neither a candidate nor in items=
    assert sparse_is_cheaper(kind, len(cand), 100, 4)             # the pairs-only path runs
    got = recommend(e, k=3, candidates=cand, exclude=ex, items=[1, 2, 3, 4], device='cpu', progress=False)
    assert sorted(map(tuple, got[['user', 'item']].values.tolist())) == [(0, 1), (0, 2), (1, 3)]
    import fastcf.candidates as fc
    monkeypatch.setitem(fc.SPARSE_SHARE, kind, 0.0)               # the dense path too
    dense = recommend(e, k=3, candidates=cand, exclude=ex, items=[1, 2, 3, 4], device='cpu', progress=False)
    keys, scores = dense_reference(e, [0, 1], [1, 2, 3, 4])
    keys = keys.where(pd.crosstab(cand.user, cand.item).reindex(index=keys.index, columns=keys.columns, fill_value=0) > 0, -np.inf)
    for ranked in (got, dense): check_ranking_frame(ranked, keys, 3, ref_scores=scores)   # the order and the scores
