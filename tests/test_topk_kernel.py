"""Brute-force checks of the top-K contract (key descending, then lower item row; padding and excluded keys never returned)
aimed where a tiled or two-stage selection can go wrong: block and chunk borders, thresholds that tie across them, rows
with fewer than k valid keys, and -0.0 against +0.0. Both CPU paths (numpy, in threads) and the torch path are checked."""
import numpy as np, pandas as pd, pytest, torch
from fastcf.models import Vocab
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
