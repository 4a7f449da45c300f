"""Brute-force checks of the top-K contract (key descending, then lower item row; padding and excluded keys never returned)
aimed where a tiled or two-stage selection can go wrong: block and chunk borders, thresholds that tie across them, rows
with fewer than k valid keys, and -0.0 against +0.0. Both CPU paths (numpy, in threads) and the torch path are checked."""
import numpy as np, pandas as pd, pytest, torch
from fastcf.vocab import Vocab
from fastcf.export import CollabExport
from fastcf.predict import iter_topk
from fastcf.topk import INVALID, PAD, topk_rows, _topk_torch, _topk_numpy_threads


def _reference(keys:np.ndarray, k:int) -> tuple:
    "Top k per row by a stable sort of the whole row (the contract's definition)"
    order = np.argsort(-keys, axis=1, kind='stable')[:, :k]
    vals = np.take_along_axis(keys, order, 1)
    return np.where(vals <= INVALID, -np.inf, vals).astype(np.float32), order


def _paths(keys:np.ndarray, k:int, block:int):
    "Every CPU-reachable implementation of `topk_rows` on `keys`"
    yield 'numpy, 1 thread', _topk_numpy_threads(keys, k, block, 1)
    yield 'numpy, 3 threads', _topk_numpy_threads(keys, k, block, 3, min_rows=4)
    vals, cols = _topk_torch(torch.from_numpy(keys), k, block)
    yield 'torch', (vals.numpy(), cols.numpy())


def _check(keys:np.ndarray, k:int, block:int):
    ref_vals, ref_cols = _reference(keys, k)
    valid = ref_vals > -np.inf
    for name, (vals, cols) in _paths(keys, k, block):
        np.testing.assert_array_equal(vals, ref_vals, err_msg=name)
        np.testing.assert_array_equal(cols[valid], ref_cols[valid], err_msg=name)


@pytest.mark.parametrize('block', [0, 8, 32])
def test_tie_straddles_block_border(block):
    "The k-th and (k+1)-th keys are equal and sit on the two sides of every block border: the lower column wins"
    k, n_rows = 3, 40
    width = block or 8
    n_cols = width * 4 * k
    keys = np.zeros((n_rows, n_cols), np.float32) - 5
    for r in range(n_rows):
        border = width * (1 + r % (n_cols // width - 1))       # a different border in each row
        keys[r, [1, 2]] = 9                                     # two clear winners, far from the border
        keys[r, [border - 1, border]] = 4                       # the 3rd place ties across the border
        keys[r, border + 1 + r % 5] = 4                         # and a third tied key further right
    _check(keys, k, block)
    vals, cols = _topk_numpy_threads(keys, k, block, 1)
    border = width * (1 + np.arange(n_rows) % (n_cols // width - 1))
    np.testing.assert_array_equal(cols[:, 2], border - 1)       # by hand: the left side of the border


@pytest.mark.parametrize('block', [0, 4, 8])
def test_threshold_ties_whole_blocks(block):
    "The k-th key is shared by many keys in several blocks (tied block maxima at the threshold)"
    rng = np.random.default_rng(0)
    k, n_rows, n_cols = 5, 64, 8 * 4 * 5 * 2
    keys = rng.integers(0, 3, (n_rows, n_cols)).astype(np.float32)  # three values: every threshold ties
    keys[::3, :] = 1                                              # rows where every key ties
    keys[1::3, rng.integers(0, n_cols, 4)] = 7                    # 4 winners, then a tie for 5th place everywhere
    _check(keys, k, block)


@pytest.mark.parametrize('block', [0, 8])
def test_padding_and_exclusions_at_borders(block):
    "Padding, excluded keys and fewer than k valid keys per row, placed at block borders, are never returned"
    rng = np.random.default_rng(1)
    k, n_rows, n_cols = 6, 30, 8 * 4 * 6
    keys = rng.integers(-3, 3, (n_rows, n_cols)).astype(np.float32)
    keys[:, -5:] = PAD                                          # padding columns at the right border
    keys[0, :] = -np.inf; keys[0, 7:9] = 1                       # 2 valid keys, either side of the first border
    keys[1, 8:] = -np.inf                                       # only the first block is valid
    keys[2:, 7::8] = -np.inf                                    # excluded: the last key of every block
    _check(keys, k, block)
    vals, _ = _topk_numpy_threads(keys, k, block, 1)
    np.testing.assert_array_equal(vals[0, 2:], np.full(4, -np.inf, np.float32))


def test_negative_zero_ties_positive_zero():
    "-0.0 and +0.0 are the same key: the lower column wins, whichever sign it has"
    keys = np.full((4, 64), -1, np.float32)
    keys[:, 10], keys[:, 20] = -0.0, 0.0
    keys[1, 10], keys[1, 20] = 0.0, -0.0
    for block in (0, 8):
        vals, cols = _topk_numpy_threads(keys, 1, block, 1)
        np.testing.assert_array_equal(cols[:, 0], [10] * 4)
        vals, cols = _topk_torch(torch.from_numpy(keys), 1, block)
        np.testing.assert_array_equal(cols[:, 0].numpy(), [10] * 4)


def test_random_shapes_all_paths():
    "Random shapes, k and blocks, keys with few distinct values: every path equals the stable sort"
    rng = np.random.default_rng(2)
    for trial in range(60):
        k, block = int(rng.integers(1, 10)), int(rng.choice([0, 4, 8, 16]))
        n_rows, n_cols = int(rng.integers(1, 120)), (block or 4) * int(rng.integers(4 * k, 4 * k + 20))
        keys = rng.integers(0, int(rng.choice([2, 5, 50])), (n_rows, n_cols)).astype(np.float32)
        if trial % 3 == 0: keys[rng.random(keys.shape) < .6] = -np.inf
        _check(keys, k, block)


def _dyadic_export(n_users:int, n_items:int, seed:int=0) -> CollabExport:
    "A dot export with small-integer factors and biases: every key is exact whatever the summation order, and ties abound"
    rng = np.random.default_rng(seed)
    ints = lambda *shape: rng.integers(-2, 3, shape).astype(np.float32)
    return CollabExport('dot', 'user', 'item', Vocab(np.arange(n_users), 1, 'user'), Vocab(np.arange(n_items), 1, 'item'),
                        ints(n_users + 1, 3), ints(n_items + 1, 3), ints(n_users + 1), ints(n_items + 1), y_range=(0., 5.5))


@pytest.mark.parametrize('block,chunk_bytes', [(0, 256 << 20), (0, 20_000), (8, 20_000), (8, 256 << 20), (16, 9_000)])
@pytest.mark.parametrize('excluded', [False, True])
def test_iter_topk_equals_brute_force(block, chunk_bytes, excluded):
    "iter_topk over chunk borders (small chunk_bytes), padded blocks (203 items) and exclusions equals a stable sort of U·Vᵀ + b"
    n_users, n_items, k = 157, 203, 6
    exp = _dyadic_export(n_users, n_items)
    keys = exp.user_factors[1:] @ exp.item_factors[1:].T + exp.item_bias[1:]
    exclude = None
    if excluded:
        rng = np.random.default_rng(3)
        pairs = np.unique(rng.integers(0, n_users * n_items, n_users * n_items // 4))
        pairs = np.concatenate([pairs, np.arange(n_items) + 5 * n_items])     # user 5: every item excluded
        exclude = pd.DataFrame({'user': pairs // n_items, 'item': pairs % n_items})
        keys[exclude.user, exclude.item] = -np.inf
    ref_vals, ref_cols = _reference(keys, k)
    ref_valid = ref_vals > -np.inf
    chunks = list(iter_topk(exp, k=k, exclude=exclude, device='cpu', chunk_bytes=chunk_bytes, block=block, progress=False))
    if chunk_bytes < 1 << 20: assert len(chunks) > 1
    rows = np.concatenate([c[0] for c in chunks]) - 1
    items, scores, valid = (np.concatenate([c[i] for c in chunks]) for i in (1, 2, 3))
    np.testing.assert_array_equal(rows, np.arange(n_users))
    np.testing.assert_array_equal(valid, ref_valid)
    np.testing.assert_array_equal(items[valid] - 1, ref_cols[ref_valid])
    expected = 5.5 / (1 + np.exp(-(ref_vals + exp.user_bias[1:, None])))
    np.testing.assert_allclose(scores[valid], expected[ref_valid], rtol=1e-6)
    if excluded: assert not valid[5].any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_gpu_path_equals_brute_force():
    "The torch path on a GPU keeps the same contract at block borders"
    rng = np.random.default_rng(4)
    keys = rng.integers(0, 4, (300, 8 * 40)).astype(np.float32)
    ref_vals, ref_cols = _reference(keys, 7)
    for block in (0, 8):
        vals, cols = topk_rows(torch.from_numpy(keys).cuda(), 7, block)
        np.testing.assert_array_equal(vals.cpu().numpy(), ref_vals)
        np.testing.assert_array_equal(cols.cpu().numpy(), ref_cols)


# --- the fused tiled kernel (fastcf.tiles), on both paths --------------------------------------------------------------
import subprocess, sys
import fastcf.tiles as tiles_mod
from fastcf.tiles import ItemTiles, kernel_available, pairs_csr, pick_kernel, tiled_topk

KERNELS = ['numpy'] + (['numba'] if kernel_available() else [])
needs_numba = pytest.mark.skipif(not kernel_available(), reason='needs numba and scipy (pip install fastcf[fast])')


def _masked_reference(users, items, k, exclude=None, only=None):
    "Dense keys U·V, masks applied, stable sort by (-key, column); invalid slots -inf and column 0 (tiled_topk's contract)"
    keys = users.astype(np.float32) @ items.astype(np.float32)
    n = len(keys)
    for mask, keep in ((only, True), (exclude, False)):
        if mask is None: continue
        hit = np.zeros(keys.shape, bool)
        hit[np.repeat(np.arange(n), np.diff(mask[0])), mask[1]] = True
        keys[~hit if keep else hit] = -np.inf
    vals, cols = _reference(keys, min(k, keys.shape[1]))
    return vals, np.where(vals > -np.inf, cols, 0)


def _check_tiled(users, items, k, exclude=None, only=None, tile=(16, 16), threads=(1, 3)):
    want_vals, want_cols = _masked_reference(users, items, k, exclude, only)
    for kernel in KERNELS:
        for n_threads in threads:
            tiles = ItemTiles(items, tile_items=tile[1], tile_users=tile[0])
            vals, cols = tiled_topk(users, tiles, k, exclude=exclude, only=only, kernel=kernel, threads=n_threads)
            np.testing.assert_array_equal(vals, want_vals, err_msg=f"{kernel}, {n_threads} threads")
            np.testing.assert_array_equal(cols, want_cols, err_msg=f"{kernel}, {n_threads} threads")


@pytest.mark.parametrize('n_users', [15, 16, 17, 33])
@pytest.mark.parametrize('n_items', [15, 16, 17, 47, 48, 49])
def test_tiled_tile_borders(n_users, n_items):
    "Users and items just below, at and above multiples of the tile (16 × 16); few distinct keys, so ties cross tile borders"
    rng = np.random.default_rng(n_users * 100 + n_items)
    users = rng.integers(-2, 3, (n_users, 3)).astype(np.float32)
    items = rng.integers(-2, 3, (3, n_items)).astype(np.float32)
    for k in (1, 5, 16, n_items, n_items + 7):                   # k ≥ n_items: every item, sorted
        _check_tiled(users, items, k)


def test_tiled_ties_across_tiles():
    "The k-th and (k+1)-th keys are equal and sit on the two sides of a tile border: the lower column wins, in every tile order"
    n_items, k = 64, 3
    users = np.ones((20, 1), np.float32)
    items = np.full((1, n_items), -5, np.float32)
    items[0, [1, 2]] = 9
    items[0, [15, 16, 33]] = 4                                   # 3rd place tied across the border 15 | 16 and again at 33
    _check_tiled(users, items, k)
    for kernel in KERNELS:                                       # by hand: the left side of the border
        vals, cols = tiled_topk(users, ItemTiles(items, tile_items=16, tile_users=16), k, kernel=kernel)
        np.testing.assert_array_equal(cols, np.tile([1, 2, 15], (20, 1)))


def test_tiled_threshold_ties():
    "Every key of many rows equals the running threshold (all keys tie, or a tie for the k-th place across several tiles)"
    rng = np.random.default_rng(5)
    users = np.ones((40, 1), np.float32)
    items = rng.integers(0, 3, (1, 100)).astype(np.float32)
    _check_tiled(users, items, 7)
    _check_tiled(np.zeros((40, 1), np.float32), items, 7)        # every key 0: the lowest 7 columns
    vals, cols = tiled_topk(np.zeros((3, 1), np.float32), ItemTiles(items, tile_items=16), 7, kernel=KERNELS[-1])
    np.testing.assert_array_equal(cols, np.tile(np.arange(7), (3, 1)))


def test_tiled_masks_padding_and_fewer_valid_than_k():
    "Exclusions, candidates, padding keys and rows with every item masked: never returned, -inf slots marked with column 0"
    rng = np.random.default_rng(6)
    n_users, n_items, k = 37, 53, 9
    users = np.concatenate([rng.integers(-2, 3, (n_users, 3)), np.ones((n_users, 1))], 1).astype(np.float32)
    items = np.concatenate([rng.integers(-2, 3, (3, n_items)), rng.integers(-1, 2, (1, n_items))]).astype(np.float32)
    items[-1, -4:] = PAD                                         # padding columns, as DotScorer pads the item keys
    excluded = rng.random((n_users, n_items)) < .4
    excluded[0] = True                                           # user 0: every item excluded
    excluded[1] = False; excluded[1, 8:] = True                  # user 1: 8 items left (fewer than k), padding aside
    allowed = rng.random((n_users, n_items)) < .5
    allowed[2] = False; allowed[2, [15, 16, 17]] = True          # user 2: three candidates, straddling a tile border
    exclude, only = pairs_csr(*np.nonzero(excluded), n_users), pairs_csr(*np.nonzero(allowed), n_users)
    for ex, on in ((exclude, None), (None, only), (exclude, only)):
        _check_tiled(users, items, k, ex, on)
    for kernel in KERNELS:
        vals, cols = tiled_topk(users, ItemTiles(items, tile_items=16, tile_users=16), k, exclude=exclude, kernel=kernel)
        assert (vals[0] == -np.inf).all() and (cols[0] == 0).all()
        assert (vals[1, :8] > -np.inf).all() and (vals[1, 8:] == -np.inf).all()
        assert not (cols[vals > -np.inf] >= n_items - 4).any()   # no padding column
        vals, cols = tiled_topk(users, ItemTiles(items, tile_items=16), k, only=only, kernel=kernel)
        np.testing.assert_array_equal(np.sort(cols[2, :3]), [15, 16, 17])


def test_tiled_negative_zero_and_default_tiles():
    "-0.0 ties +0.0 (lower column wins); the default, L2-sized tiles give the same answer as small ones"
    users = np.array([[1.], [-1.]], np.float32)
    items = np.full((1, 3000), -1, np.float32); items[0, 10], items[0, 2900] = -0.0, 0.0
    for kernel in KERNELS:
        vals, cols = tiled_topk(users[:1], items, 1, kernel=kernel)
        np.testing.assert_array_equal(cols, [[10]])
    rng = np.random.default_rng(7)
    users, items = rng.integers(-3, 4, (300, 5)).astype(np.float32), rng.integers(-3, 4, (5, 5000)).astype(np.float32)
    _check_tiled(users, items, 50, tile=(None, None), threads=(2,))


@needs_numba
@pytest.mark.parametrize('kernel', ['numba', 'numpy'])
@pytest.mark.parametrize('excluded', [False, True])
def test_iter_topk_each_kernel_equals_brute_force(monkeypatch, kernel, excluded):
    "iter_topk (dot, CPU) forced onto each path by FASTCF_KERNEL, over chunk borders and exclusions, equals a stable sort"
    monkeypatch.setenv('FASTCF_KERNEL', kernel)
    calls = []
    real = tiles_mod._numba_path if kernel == 'numba' else tiles_mod._numpy_path
    def spy(*a, **kw): calls.append(1); return real(*a, **kw)    # records that the forced path ran, then runs it
    monkeypatch.setattr(tiles_mod, '_numba_path' if kernel == 'numba' else '_numpy_path', spy)
    n_users, n_items, k = 157, 203, 6
    exp = _dyadic_export(n_users, n_items, seed=1)
    keys = exp.user_factors[1:] @ exp.item_factors[1:].T + exp.item_bias[1:]
    exclude = None
    if excluded:
        rng = np.random.default_rng(8)
        pairs = np.unique(rng.integers(0, n_users * n_items, n_users * n_items // 4))
        pairs = np.concatenate([pairs, np.arange(n_items) + 7 * n_items])
        exclude = pd.DataFrame({'user': pairs // n_items, 'item': pairs % n_items})
        keys[exclude.user, exclude.item] = -np.inf
    ref_vals, ref_cols = _reference(keys, k)
    ref_valid = ref_vals > -np.inf
    chunks = list(iter_topk(exp, k=k, exclude=exclude, device='cpu', chunk_bytes=20_000, progress=False))
    assert len(chunks) > 1 and len(calls) == len(chunks)
    items, valid = np.concatenate([c[1] for c in chunks]), np.concatenate([c[3] for c in chunks])
    np.testing.assert_array_equal(valid, ref_valid)
    np.testing.assert_array_equal(items[valid] - 1, ref_cols[ref_valid])


def test_numba_missing_falls_back_to_numpy(monkeypatch):
    "With numba not importable: 'auto' is numpy, forcing numba is an error naming the extra, and recommend still works"
    real_find_spec = tiles_mod.find_spec
    monkeypatch.setattr(tiles_mod, 'find_spec', lambda name: None if name == 'numba' else real_find_spec(name))
    monkeypatch.setitem(sys.modules, 'numba', None)              # `import numba` now raises ImportError
    monkeypatch.setattr(tiles_mod, '_COMPILED', {})
    assert not kernel_available()
    assert pick_kernel('auto', n_cols=10**6) == 'numpy'
    with pytest.raises(ImportError, match=r"kernel='numba' needs numba and scipy: pip install 'fastcf\[fast\]'"):
        pick_kernel('numba')
    monkeypatch.setenv('FASTCF_KERNEL', 'numba')
    with pytest.raises(ImportError, match="FASTCF_KERNEL='numba' needs numba"):
        tiled_topk(np.ones((2, 1), np.float32), np.ones((1, 3), np.float32), 2)
    monkeypatch.setenv('FASTCF_KERNEL', 'numpy')
    users = np.arange(6, dtype=np.float32).reshape(6, 1)
    vals, cols = tiled_topk(users, np.array([[1., 3., 2.]], np.float32), 2)
    np.testing.assert_array_equal(cols[1:], np.tile([1, 2], (5, 1)))
    monkeypatch.delenv('FASTCF_KERNEL')
    exp = _dyadic_export(30, 5000)                               # wide enough that 'auto' would take numba if it could
    chunks = list(iter_topk(exp, k=3, device='cpu', progress=False))
    assert sum(len(c[0]) for c in chunks) == 30


def test_importing_fastcf_does_not_import_numba():
    "numba is imported on the numba path's first call only"
    code = "import sys, fastcf.tiles, fastcf.predict, fastcf.topk; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'


# --- keys that are NaN or +inf: finite weights whose products overflow float32 (a fuzzer found
# `ValueError: cannot reshape array of size 10 into shape (3)` in `_select_dense`, and the numba heap skips NaN silently)

from fastcf.testing import random_export
from fastcf.predict import recommend
from fastcf.topk import NonFiniteKeysError


@pytest.mark.parametrize('n_cols,block', [(40, 0), (2048, 0), (256, 8)])    # numpy's sort, its partition, the block path
def test_nan_keys_are_marked_on_every_path(n_cols, block):
    "A row holding a NaN or +inf key comes back marked (NaN or inf first) from every path, tie rows included; topk_rows names them"
    keys = np.random.default_rng(3).standard_normal((200, n_cols)).astype(np.float32)
    keys[100, :10] = 7.                                  # a tie across the boundary and no NaN: the exact path, not marked
    keys[0, 5] = np.nan; keys[63] = np.nan; keys[64, 1:5] = np.nan
    keys[150, :10] = 7.; keys[150, -1] = np.nan          # a tie across the boundary as well: the exact path must see the NaN
    keys[199, 7] = np.inf
    bad = [0, 63, 64, 150, 199]
    for name, (vals, cols) in _paths(keys, 5, block):
        assert np.flatnonzero(~(vals[:, 0] < np.inf)).tolist() == bad, name
    with pytest.raises(NonFiniteKeysError, match=r'5 row\(s\) \(0, 63, 64, 150, 199\) are NaN or infinite') as e:
        topk_rows(torch.from_numpy(keys), 5, block)
    assert e.value.rows.tolist() == bad
    with pytest.raises(NonFiniteKeysError, match=r'5 row\(s\)'): topk_rows(torch.from_numpy(keys[:, [1, 2, 5, 7, -1]]), 5)   # k = every column
    clean = np.delete(keys, bad, axis=0)
    _check(clean, 5, block)                              # and the other rows are still exact


@pytest.mark.parametrize('kernel', ['numpy', pytest.param('numba', marks=needs_numba)])
def test_overflow_in_recommend_names_the_users(monkeypatch, kernel):
    "The fuzzer's NN case and a dot case, on each CPU kernel: a ValueError naming the users whose scores overflowed"
    monkeypatch.setenv('FASTCF_KERNEL', kernel)
    nn = random_export(n_users=5, n_items=4, n_factors=3, kind='nn', layers=(4,), seed=1)
    nn.item_factors[4, 1] = 3e38                         # finite, but its products overflow in the first layer
    with np.errstate(over='ignore', invalid='ignore'), pytest.raises(ValueError, match=r"5 user ID\(s\) \(0, 1, 2, 3, 4\) .*overflowed float32"):
        recommend(nn, k=3, device='cpu', progress=False)
    dot = random_export(n_users=5, n_items=4, n_factors=3, kind='dot', seed=1)
    dot.user_factors[3] = [3e38, 3e38, 0.]; dot.user_factors[5] = [-3e38, 3e38, 0.]
    with np.errstate(over='ignore', invalid='ignore'):
        ref = dot.user_factors[1:] @ dot.item_factors[1:].T + dot.item_bias[1:]   # float32, as the kernels compute
    want = dot.user_ids[~np.isfinite(ref).all(1)].tolist()
    assert 2 in want                                     # row 3: 3e38 · 2 overflows to inf
    with pytest.raises(ValueError, match=rf"{len(want)} user ID\(s\) \({', '.join(map(str, want))}\) are NaN or infinite"):
        recommend(dot, k=3, device='cpu', progress=False)
    dot.user_factors[3] = dot.user_factors[5] = 0.       # without them every key is finite again
    assert len(recommend(dot, k=3, device='cpu', progress=False)) == 15
