"""Benchmark fastcf's cross-product predictor against the alternatives, on the same synthetic factors, in one process.

    python bench/bench_predict.py                      # every case, 2 torch threads, median of 3
    python bench/bench_predict.py --cases bio,nn --repeat 5
    python bench/bench_predict.py --rss-check          # ML-25M shape: peak RSS of recommend() in a fresh process
    python bench/bench_predict.py --cases bio --avx2   # also the numba path compiled for AVX2 (a child with NUMBA_CPU_NAME=haswell)
    python bench/bench_predict.py --cases kernel-profile   # where the numba kernel's time goes at the ML-25M width (one thread)
    ATEN_CPU_CAPABILITY=avx2 python bench/bench_predict.py --cases bio,bio-excl   # torch's AVX2 kernels on an AVX-512 CPU

fastcf runs three ways: `recommend` as shipped ('auto': the numba kernel of `fastcf.tiles` on wide catalogues, the numpy
path on narrow ones), and forced onto each path with FASTCF_KERNEL=numba / numpy. With --avx2 on an AVX-512 CPU, a child
process runs the numba path compiled for Haswell (NUMBA_CPU_NAME=haswell and NUMBA_CPU_FEATURES without
AVX-512, OPENBLAS_CORETYPE=Haswell, ATEN_CPU_CAPABILITY=avx2) and reports its median and the count of zmm registers in the compiled kernel (0: no AVX-512).

Prints first the CPU flags it ran on, torch's CPU capability and the machine's square-GEMM throughput (the compute floor of
each shape is its padded, bias-augmented product at that throughput); the bio cases also print where `recommend`'s time
goes (GEMM, selection, ID mapping, frame assembly), and each case ends with its targets from issue 15, held or not.

Prints one markdown table per case: median wall time (after one untimed warm-up round), scores per second, peak RSS of the
process while the competitor ran (it includes what earlier competitors left allocated), and the ratio to fastcf. Competitors run alternately (round-robin over repeats) so that load from other processes on a shared machine
affects them alike; the order rotates each round, so no competitor always runs right after a slow one, and a garbage collection
before each timed call keeps one competitor's garbage (fastai's get_preds leaves plenty) out of the next one's time. Slow competitors run on a slice of users and are extrapolated linearly; their rows say so.
"""
import argparse, gc, os, resource, subprocess, sys, threading, time, warnings
import numpy as np, pandas as pd, torch

warnings.filterwarnings('ignore')
from fastcf.testing import random_export
from fastcf.predict import recommend, iter_topk
from fastcf.export import CollabExport
from fastcf.output import recs_frame_of
from fastcf.tiles import ItemTiles, kernel_available, pairs_csr, pick_kernel, tiled_topk

SHAPES = {'bio': (45_854, 488), 'ml25m': (162_541, 59_047)}


def cpu_flags() -> str:
    "The vector-ISA flags of this CPU that matter here, as lscpu/proc name them"
    try: flags = set(open('/proc/cpuinfo').read().split('flags')[1].split('\n')[0].split())
    except (OSError, IndexError): flags = set()
    wanted = ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_bf16', 'avx512_fp16', 'amx_bf16', 'amx_tile']
    model = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
    return f"{model}; flags: {' '.join(f for f in wanted if f in flags) or 'none of ' + ' '.join(wanted)}"


def gemm_gflops(n=2048, repeat=5) -> float:
    "The machine's float32 square-GEMM throughput (best of `repeat`), the yardstick of the compute floor"
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n); torch.mm(a, b, out=out)
    best = min(_timed(lambda: torch.mm(a, b, out=out)) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter(); fn(); return time.perf_counter() - t


def bio_breakdown(exp, k, exclude=None, repeat=3):
    "Where `recommend`'s time goes at this shape: the same chunks as `iter_topk`, each stage timed on its own (median of `repeat`)"
    from fastcf.candidates import PairSet
    from fastcf.predict import _chunk_size
    from fastcf.scorers import DotScorer
    from fastcf.topk import pick_block
    n_items = exp.items.n_rows - exp.items.n_pad
    item_rows = np.arange(exp.items.n_pad, exp.items.n_rows)
    block = pick_block(n_items, k)
    n_cols = -(-n_items // block) * block if block else n_items
    scorer = DotScorer(exp, item_rows, n_cols, 'cpu')
    tiles = ItemTiles(scorer.items_t)
    excl = None if exclude is None else PairSet(exp, exclude)
    item_col = np.full(exp.items.n_rows, -1, np.int64); item_col[item_rows] = np.arange(n_items)
    user_rows = np.arange(exp.users.n_pad, exp.users.n_rows)
    chunk = _chunk_size(n_cols, 256 << 20, scorer)
    path = pick_kernel(None, n_cols)
    stages = {s: [] for s in ('GEMM alone (the same product, to memory)', 'exclusions (CSR per chunk)', f'score + select ({path} path of tiled_topk)',
                              'scores of the winners', 'ID mapping (rows → raw IDs)', 'frame assembly (recs_frame_of)')}
    for _ in range(repeat):
        acc = dict.fromkeys(stages, 0.)
        chunks = []
        out = torch.empty(min(chunk, len(user_rows)), n_cols)
        for s in range(0, len(user_rows), chunk):
            rows = user_rows[s:s+chunk]; rows_t = torch.from_numpy(rows)
            t0 = time.perf_counter(); users = scorer.users.index_select(0, rows_t); torch.mm(users, scorer.items_t, out=out[:len(rows)])
            t1 = time.perf_counter(); csr = None if excl is None else pairs_csr(*excl.pairs(rows, item_col), len(rows))
            t2 = time.perf_counter(); vals, cols = tiled_topk(users, tiles, k, exclude=csr, block=block)
            t3 = time.perf_counter(); scores = scorer.scores(rows_t, torch.from_numpy(vals)).numpy(); valid = vals > -np.inf
            t4 = time.perf_counter(); items = item_rows[cols.clip(max=n_items - 1)]
            t5 = time.perf_counter()
            chunks.append((rows, items, scores, valid))
            for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)): acc[name] += dt
        t = time.perf_counter(); recs_frame_of(exp, chunks); acc['frame assembly (recs_frame_of)'] += time.perf_counter() - t
        for name in stages: stages[name].append(acc[name])
    med = {name: float(np.median(ts)) for name, ts in stages.items()}
    total = sum(v for n, v in med.items() if not n.startswith('GEMM alone'))
    print(f"Where the time goes (the same {-(-len(user_rows) // chunk)} chunks as `recommend`, each stage timed alone, median of {repeat}; "
          f"the GEMM alone is part of 'score + select', shown for scale):\n")
    print('| stage | time (s) | share |')
    print('|---|---:|---:|')
    for name, dt in med.items(): print(f"| {name} | {dt:.3f} | {'' if name.startswith('GEMM alone') else f'{dt / total:.0%}'} |")
    print(f"| total | {total:.3f} | |\n")
    return med


def kernel_profile(n_users=8192, n_items=SHAPES['ml25m'][1], k=50, repeat=3):
    "Where the numba kernel's time goes at the ML-25M width, on one thread (CPU seconds, best of `repeat`): its tile GEMMs alone, the kernel on keys that never pass the threshold after the first K (scan only), the kernel on random keys (scan and heap updates), and torch's GEMM of the same product to memory"
    import numba
    from numba import njit
    from threadpoolctl import threadpool_limits
    from fastcf.tiles import compiled_kernel
    @njit(nogil=True)
    def tile_gemms(users, tiles, tile_users):
        out = np.empty((tile_users, tiles.shape[2]), np.float32)
        for u0 in range(0, users.shape[0], tile_users):
            u1 = min(u0 + tile_users, users.shape[0])
            for t in range(tiles.shape[0]): np.dot(users[u0:u1], tiles[t], out[:u1 - u0])
        return out[0, 0]
    rng = np.random.default_rng(0)
    users = rng.normal(0, .3, (n_users, 51)).astype(np.float32); users[:, -1] = 1
    items = rng.normal(0, .3, (51, n_items)).astype(np.float32)
    falling = items.copy(); falling[-1] = -np.arange(n_items, dtype=np.float32) * 100     # keys fall with the column
    tiles, tiles_falling = ItemTiles(items), ItemTiles(falling)
    select, none, empty = compiled_kernel(), np.zeros(n_users + 1, np.int64), np.zeros(0, np.int64)
    def kernel(it):
        vals, cols = np.full((n_users, k), np.float32(-1e29)), np.zeros((n_users, k), np.int64)
        select(users, it.tiles, it.n_cols, it.tile_users, none, empty, none, empty, False, vals, cols)
    def cpu(fn):
        t = time.process_time(); fn(); return time.process_time() - t
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    users_t, items_t = torch.from_numpy(users), torch.from_numpy(items)
    out = torch.empty(454, n_items)
    def to_memory():
        for s in range(0, n_users, 454): torch.mm(users_t[s:s+454], items_t, out=out[:len(users_t[s:s+454])])
    with threadpool_limits(1, user_api='blas'):
        tile_gemms(users, tiles.tiles, tiles.tile_users); kernel(tiles)
        res = {'tile GEMMs alone (numba np.dot → OpenBLAS, into an L2 buffer)': lambda: tile_gemms(users, tiles.tiles, tiles.tile_users),
               'kernel, keys that stop passing the threshold after the first K (GEMM + scan)': lambda: kernel(tiles_falling),
               'kernel, random keys (GEMM + scan + heap updates)': lambda: kernel(tiles),
               "torch GEMM of the same product to memory (fastcf's chunks)": to_memory}
        med = {name: min(cpu(fn) for _ in range(repeat)) for name, fn in res.items()}
    torch.set_num_threads(threads)
    print(f"Kernel profile: {n_users:,} users × {n_items:,} items, k={k}, one thread, tiles {tiles.tile_users} × {tiles.tile_items}, "
          f"CPU seconds (best of {repeat}):\n")
    print('| part | CPU s |')
    print('|---|---:|')
    for name, dt in med.items(): print(f"| {name} | {dt:.3f} |")
    print()


def targets(rows):
    "Print each (target, measured ratio, limit, at most?) as held or not"
    print('| target | measured | held |')
    print('|---|---:|:---:|')
    for what, value, limit, at_most in rows:
        held = value <= limit if at_most else value >= limit
        print(f"| {what} {'≤' if at_most else '≥'} {limit:g} | {value:.2f} | {'yes' if held else 'NO'} |")
    print()


def rss_mb() -> float:
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e6


class PeakRSS:
    "Peak resident memory of this process while the block runs (sampled every 20 ms, so as not to steal the GIL)"
    def __enter__(self):
        self.peak, self.done = rss_mb(), False
        self.thread = threading.Thread(target=self._watch, daemon=True); self.thread.start()
        return self
    def _watch(self):
        while not self.done: self.peak = max(self.peak, rss_mb()); time.sleep(0.02)
    def __exit__(self, *a): self.done = True; self.thread.join(); self.peak = max(self.peak, rss_mb())


def make_export(n_users, n_items, kind='dot', n_factors=50, layers=(100, 50), seed=0):
    "Synthetic export with trained-model-like scales (factors and biases ~ N(0, 0.3))"
    rng = np.random.default_rng(seed)
    if kind == 'dot':
        from fastcf.vocab import Vocab
        f32 = lambda *shape: rng.normal(0, 0.3, shape).astype(np.float32)
        return CollabExport('dot', 'user', 'item', Vocab(np.arange(n_users), 1, 'user'), Vocab(np.arange(n_items), 1, 'item'),
                            f32(n_users + 1, n_factors), f32(n_items + 1, n_factors), f32(n_users + 1), f32(n_items + 1),
                            y_range=(0., 5.5))
    from fastcf.models import EmbeddingNN, emb_sz_rule
    torch.manual_seed(seed)
    model = EmbeddingNN([(n_users + 1, emb_sz_rule(n_users + 1)), (n_items + 1, emb_sz_rule(n_items + 1))], list(layers), y_range=(0, 5.5))
    with torch.no_grad():
        for emb in model.embeds: emb.weight.normal_(0, 0.3)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d) and m.num_features: m.running_mean.normal_(0, 0.3); m.running_var.uniform_(0.5, 2)
    classes = {'user': ['#na#'] + list(range(n_users)), 'item': ['#na#'] + list(range(n_items))}
    return CollabExport.from_model(model.eval(), classes), model.eval()


def seen_pairs(n_users, n_items, frac=0.01, seed=1):
    rng = np.random.default_rng(seed)
    n = int(n_users * n_items * frac)
    df = pd.DataFrame({'user': rng.integers(0, n_users, n), 'item': rng.integers(0, n_items, n)}).drop_duplicates()
    return df


# --- competitors: each returns a callable that does the whole job once ---------------------------------------------------

class forced_kernel:
    "FASTCF_KERNEL set to `kernel` inside the block (None: left as it is)"
    def __init__(self, kernel): self.kernel = kernel
    def __enter__(self):
        self.old = os.environ.get('FASTCF_KERNEL')
        if self.kernel: os.environ['FASTCF_KERNEL'] = self.kernel
    def __exit__(self, *a):
        if self.old is None: os.environ.pop('FASTCF_KERNEL', None)
        else: os.environ['FASTCF_KERNEL'] = self.old

def c_fastcf(exp, k, exclude=None, kernel=None):
    "recommend() → DataFrame, on the path FASTCF_KERNEL=`kernel` picks (None: 'auto')"
    def run():
        with forced_kernel(kernel): return recommend(exp, k=k, exclude=exclude, device='cpu', progress=False)
    return run

def c_fastcf_core(exp, k, exclude=None, kernel=None):
    "fastcf's chunked top-K without building the DataFrame (arrays only, as implicit returns)"
    def run():
        with forced_kernel(kernel): return [None for _ in iter_topk(exp, k=k, exclude=exclude, device='cpu')]
    return run

def c_fastcf_frame_of(exp, k, exclude=None):
    "iter_topk's chunks into one DataFrame by `recs_frame_of` (preallocated columns): what recommend() does once it uses it"
    return lambda: recs_frame_of(exp, iter_topk(exp, k=k, exclude=exclude, device='cpu', progress=False))

def fastcf_comps(exp, k, exclude=None):
    "fastcf's competitors: as shipped ('auto'), and forced onto each path of fastcf.tiles"
    auto = pick_kernel(None, exp.items.n_rows - exp.items.n_pad)
    comps = [(f'fastcf recommend (DataFrame; auto = {auto} path)', c_fastcf(exp, k, exclude), 1),
             (f'fastcf core (arrays, no DataFrame; {auto} path)', c_fastcf_core(exp, k, exclude), 1),
             (f'fastcf iter_topk + recs_frame_of (one preallocated DataFrame; {auto} path)', c_fastcf_frame_of(exp, k, exclude), 1)]
    if kernel_available(): comps.append(('fastcf recommend, FASTCF_KERNEL=numba', c_fastcf(exp, k, exclude, 'numba'), 1))
    comps.append(('fastcf recommend, FASTCF_KERNEL=numpy', c_fastcf(exp, k, exclude, 'numpy'), 1))
    return comps

def kernel_zmm() -> tuple:
    "(zmm, ymm) register mentions in the numba kernel's assembly for this process's CPU target (a fresh, uncached compile: numba cannot inspect cached code)"
    import numba, fastcf.tiles as tiles_mod
    tiled_topk(np.ones((4, 3), np.float32), np.ones((3, 5), np.float32), 2, kernel='numba')     # compile or load the cached kernel
    fresh = numba.njit(nogil=True)(tiles_mod._tiled_select)
    fresh.compile(tiles_mod.compiled_kernel().signatures[0])
    asm = '\n'.join(fresh.inspect_asm().values())
    return asm.count('zmm'), asm.count('ymm')

def avx2_child(case, k, repeat, threads):
    "Median time of recommend() on the numba path in a child process compiled for Haswell (AVX2), and its kernel's zmm count"
    from fastcf.testing import avx2_environ
    env = dict(os.environ, **avx2_environ(), FASTCF_KERNEL='numba')
    cmd = [sys.executable, __file__, '--child', case, '--k', str(k), '--repeat', str(repeat), '--threads', str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode: raise RuntimeError(f"AVX2 child failed: {out.stderr[-2000:]}")
    med, zmm, ymm = out.stdout.strip().split('\n')[-1].split()
    return float(med), f"zmm {zmm}, ymm {ymm}"

def child_main(case, k, repeat, threads):
    "In the AVX2 child: warm up, then print the median of `repeat` recommend() calls and the kernel's zmm count"
    torch.set_num_threads(threads)
    n_users, n_items = SHAPES['bio' if case.startswith('bio') else case]
    exp = make_export(n_users, n_items)
    ex = seen_pairs(n_users, n_items) if case == 'bio-excl' else None
    run = c_fastcf(exp, k, ex, 'numba')
    zmm, ymm = kernel_zmm()
    if case != 'ml25m': run()
    times = []
    for _ in range(repeat):
        gc.collect(); t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    print(f"{float(np.median(times))} {zmm} {ymm}")

def _aug(exp):
    users = np.concatenate([exp.user_factors[1:], np.ones((len(exp.user_factors) - 1, 1), np.float32)], 1)
    items = np.concatenate([exp.item_factors[1:], exp.item_bias[1:, None]], 1)
    return np.ascontiguousarray(users), np.ascontiguousarray(items)

def c_bare_gemm(exp, k, exclude=None, chunk=None, pad_to=1):
    "The compute floor: the same chunked matrix products, no selection (items zero-padded to a multiple of `pad_to`)"
    users, items = map(torch.from_numpy, _aug(exp))
    pad = -len(items) % pad_to
    if pad: items = torch.cat([items, torch.zeros(pad, items.shape[1])])
    items_t = items.t().contiguous()
    chunk = chunk or max(1, min(16384, (256 << 20) // (10 * items.shape[0])))      # fastcf's default chunking
    out = torch.empty(chunk, items.shape[0])
    def run():
        for s in range(0, len(users), chunk):
            u = users[s:s+chunk]; torch.mm(u, items_t, out=out[:len(u)])
    return run

def c_plain_torch(exp, k, exclude=None, chunk=4096):
    "Plain chunked torch.mm + torch.topk (masking excluded pairs with -inf)"
    users, items = map(torch.from_numpy, _aug(exp))
    items_t = items.t().contiguous()
    ex = None
    if exclude is not None:
        ex = (torch.from_numpy(exclude.user.to_numpy()), torch.from_numpy(exclude.item.to_numpy()))
    def run():
        res = []
        for s in range(0, len(users), chunk):
            scores = users[s:s+chunk] @ items_t
            if ex is not None:
                m = (ex[0] >= s) & (ex[0] < s + chunk)
                scores[ex[0][m] - s, ex[1][m]] = float('-inf')
            res.append(torch.topk(scores, k, dim=1))
        return res
    return run

def c_implicit(exp, k, exclude=None, threads=2):
    from implicit.cpu.topk import topk
    import scipy.sparse as sp
    users, items = _aug(exp)
    filt = None
    if exclude is not None:
        filt = sp.csr_matrix((np.ones(len(exclude), np.float32), (exclude.user.to_numpy(), exclude.item.to_numpy())),
                             shape=(len(users), len(items)))
    return lambda: topk(items, users, k, filter_query_items=filt, num_threads=threads)

def c_nn_forward(model, n_users, n_items, k, chunk_pairs=1 << 20):
    "The model's own forward over all (user, item) pairs in chunks, then topk"
    items = torch.arange(1, n_items + 1)
    per = max(1, chunk_pairs // n_items)
    def run():
        with torch.no_grad():
            for s in range(1, n_users + 1, per):
                u = torch.arange(s, min(s + per, n_users + 1))
                x = torch.stack([u.repeat_interleave(n_items), items.repeat(len(u))], 1)
                torch.topk(model(x).view(len(u), n_items), k, dim=1)
    return run

def fastai_learner(model, n_users, n_items):
    "A fastai Learner holding `model`, with DataLoaders whose vocab is 0..n-1 for users and items"
    from fastai.collab import CollabDataLoaders
    from fastai.learner import Learner
    from fastai.losses import MSELossFlat
    n = max(n_users, n_items)
    df = pd.DataFrame({'user': np.arange(n) % n_users, 'item': np.arange(n) % n_items, 'rating': np.ones(n, np.float32)})
    dls = CollabDataLoaders.from_df(df, valid_pct=0.0, bs=64)
    assert len(dls.classes['user']) == n_users + 1 and len(dls.classes['item']) == n_items + 1
    return Learner(dls, model, loss_func=MSELossFlat())

def c_get_preds(learn, n_users, n_items, k, bs, n_slice):
    "fastai get_preds on the cartesian DataFrame of a slice of users (extrapolated), then topk per user"
    cart = pd.DataFrame({'user': np.repeat(np.arange(n_slice), n_items), 'item': np.tile(np.arange(n_items), n_slice)})
    def run():
        dl = learn.dls.test_dl(cart, bs=bs)
        with learn.no_bar(): preds, _ = learn.get_preds(dl=dl)
        torch.topk(preds.view(n_slice, n_items), k, dim=1)
    return run


def dot_model_from(exp):
    from fastcf.models import EmbeddingDotBias
    m = EmbeddingDotBias(exp.n_factors, exp.users.n_rows, exp.items.n_rows, y_range=exp.y_range)
    with torch.no_grad():
        m.u_weight.weight.copy_(torch.from_numpy(exp.user_factors)); m.i_weight.weight.copy_(torch.from_numpy(exp.item_factors))
        m.u_bias.weight.copy_(torch.from_numpy(exp.user_bias)[:, None]); m.i_bias.weight.copy_(torch.from_numpy(exp.item_bias)[:, None])
    return m.eval()


def measure(competitors, repeat, n_scores, warm_up=True, extra=None):
    "competitors: [(name, fn, scale)] where scale multiplies a slice's time up to the full job; extra: {name: seconds} measured elsewhere"
    times = {name: [] for name, _, _ in competitors}
    peaks = {name: 0. for name, _, _ in competitors}
    for name, fn, scale in competitors:               # warm-up round (imports, allocator, caches), not timed
        if scale == 1 and warm_up: fn()
    for r in range(repeat):
        for name, fn, scale in competitors[r % len(competitors):] + competitors[:r % len(competitors)]:   # rotate the order
            gc.collect()                                   # garbage from the previous competitor is not charged to this one
            with PeakRSS() as p:
                t = time.perf_counter(); fn(); dt = time.perf_counter() - t
            times[name].append(dt * scale); peaks[name] = max(peaks[name], p.peak)
    med = {name: float(np.median(ts)) for name, ts in times.items()}
    ref = med[competitors[0][0]]
    print('| competitor | wall time (s, median) | scores/s | peak RSS (MB) | time ÷ fastcf |')
    print('|---|---:|---:|---:|---:|')
    for name, _, _ in competitors:
        print(f"| {name} | {med[name]:.3f} | {n_scores / med[name]:.3g} | {peaks[name]:.0f} | {med[name] / ref:.2f} |")
    for name, dt in (extra or {}).items():
        print(f"| {name} | {dt:.3f} | {n_scores / dt:.3g} | (child) | {dt / ref:.2f} |"); med[name] = dt
    print(f"\nload average after this case: {os.getloadavg()[0]:.1f}\n")
    return med


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cases', default='bio,bio-excl,ml25m,nn')
    p.add_argument('--threads', type=int, default=2); p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--k', type=int, default=50)
    p.add_argument('--no-fastai', action='store_true', help="skip fastai's get_preds (the slowest competitor)")
    p.add_argument('--rss-check', action='store_true', help='ML-25M shape recommend() peak RSS in this (fresh) process')
    p.add_argument('--avx2', action='store_true', help='also time the numba path compiled for AVX2 (child process; AVX-512 CPUs)')
    p.add_argument('--child', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child: return child_main(args.child, args.k, args.repeat, args.threads)
    torch.set_num_threads(args.threads)
    if args.rss_check:
        exp = make_export(*SHAPES['ml25m'])
        import tempfile
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as d: recommend(exp, k=args.k, device='cpu', progress=False, out=os.path.join(d, 'recs.parquet'))
        dt = time.perf_counter() - t
        t = time.perf_counter(); df = recommend(exp, k=args.k, device='cpu', progress=False); dt2 = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
        print(f"ML-25M shape {SHAPES['ml25m']}: recommend(out=parquet) {dt:.1f} s, recommend() → DataFrame of {len(df):,} rows "
              f"{dt2:.1f} s; peak RSS {peak:.0f} MB (after building the export: {base:.0f} MB); the full score matrix would be "
              f"{SHAPES['ml25m'][0] * SHAPES['ml25m'][1] * 4 / 1e9:.0f} GB")
        return
    cap = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, 'cpu') else '?'
    gflops = gemm_gflops()
    print(f"torch {torch.__version__}, {args.threads} threads, k={args.k}, median of {args.repeat}; load average {os.getloadavg()[0]:.1f}")
    print(f"CPU: {cpu_flags()}; torch CPU capability {cap}; square float32 GEMM {gflops:.0f} GFLOP/s")
    if kernel_available():
        import numba
        t = time.perf_counter(); tiled_topk(np.ones((4, 3), np.float32), np.ones((3, 5), np.float32), 2, kernel='numba')
        first = time.perf_counter() - t
        zmm, ymm = kernel_zmm()
        print(f"numba {numba.__version__} for CPU {numba.config.CPU_NAME or 'host'}: kernel's first call {first:.2f} s (compile, or load "
              f"from numba's cache); its code for this CPU mentions zmm (AVX-512) registers {zmm} times, ymm {ymm}")
    else: print("numba not installed: fastcf runs the numpy path only")
    has_avx512 = 'avx512f' in cpu_flags()
    print()
    floor = lambda n_users, n_cols, f=50: 2 * n_users * n_cols * (f + 1) / (gflops * 1e9)
    for case in args.cases.split(','):
        if case in ('bio', 'bio-excl'):
            n_users, n_items = SHAPES['bio']
            exp = make_export(n_users, n_items)
            ex = seen_pairs(n_users, n_items) if case == 'bio-excl' else None
            learn = fastai_learner(dot_model_from(exp), n_users, n_items)
            n_slice = 2048
            print(f"### {case}: {n_users:,} users × {n_items} items, 50 factors" + (f", {len(ex):,} seen pairs excluded (1%)" if ex is not None else ''))
            comps = fastcf_comps(exp, args.k, ex) + [
                     ('plain chunked torch.mm + topk', c_plain_torch(exp, args.k, ex), 1),
                     ('implicit topk', c_implicit(exp, args.k, ex, args.threads), 1),
                     ('bare GEMM (no selection)', c_bare_gemm(exp, args.k), 1)]
            if ex is None and not args.no_fastai:
                comps += [(f'fastai get_preds bs {bs} ({n_slice:,}-user slice, extrapolated)', c_get_preds(learn, n_users, n_items, args.k, bs, n_slice), n_users / n_slice) for bs in (64, 4096)]
            extra = {}
            if args.avx2 and has_avx512 and kernel_available():
                dt, zmm = avx2_child(case, args.k, args.repeat, args.threads)
                extra[f'fastcf recommend, numba compiled for AVX2 (haswell; kernel {zmm})'] = dt
            med = measure(comps, args.repeat, n_users * n_items, extra=extra)
            print(f"compute floor at {gflops:.0f} GFLOP/s: {floor(n_users, n_items):.3f} s\n")
            bio_breakdown(exp, args.k, ex, args.repeat)
            fast = med[comps[0][0]]
            targets([(f"implicit ÷ fastcf ({case})", med['implicit topk'] / fast, 4, False)])
        elif case == 'kernel-profile': kernel_profile()
        elif case == 'ml25m':
            n_users, n_items = SHAPES['ml25m']
            exp = make_export(n_users, n_items)
            n_slice = 16_384
            small = make_export(n_slice, n_items)          # the same item side, a 16,384-user slice
            small.item.factors, small.item.bias = exp.item.factors, exp.item.bias
            small.user.factors, small.user.bias = exp.user.factors[:n_slice + 1], exp.user.bias[:n_slice + 1]
            learn = fastai_learner(dot_model_from(small), n_slice, n_items)
            print(f"### ml25m: {n_users:,} users × {n_items:,} items, 50 factors")
            comps = fastcf_comps(exp, args.k) + [
                     ('bare GEMM (no selection)', c_bare_gemm(exp, args.k), 1),
                     ('bare GEMM, items padded to a multiple of 32 (as fastcf does)', c_bare_gemm(exp, args.k, pad_to=32), 1),
                     ('implicit topk', c_implicit(exp, args.k, None, args.threads), 1),
                     (f'plain chunked torch.mm + topk ({n_slice:,}-user slice, extrapolated)', c_plain_torch(small, args.k), n_users / n_slice)]
            if not args.no_fastai: comps += [('fastai get_preds bs 4096 (16-user slice, extrapolated)', c_get_preds(learn, n_slice, n_items, args.k, 4096, 16), n_users / 16)]
            extra = {}
            if args.avx2 and has_avx512 and kernel_available():
                dt, zmm = avx2_child('ml25m', args.k, args.repeat, args.threads)
                extra[f'fastcf recommend, numba compiled for AVX2 (haswell; kernel {zmm})'] = dt
            med = measure(comps, args.repeat, n_users * n_items, warm_up=False, extra=extra)   # the kernel is compiled above
            fl = floor(n_users, -(-n_items // 64) * 64)
            print(f"compute floor at {gflops:.0f} GFLOP/s: {fl:.2f} s\n")
            fast, gemm = med[comps[0][0]], med['bare GEMM, items padded to a multiple of 32 (as fastcf does)']
            targets([('fastcf ÷ GEMM-to-memory (padded)', fast / gemm, 0.8, True), ('fastcf ÷ compute floor', fast / fl, 1.6, True),
                     ('implicit ÷ fastcf', med['implicit topk'] / fast, 2.5, False)])
        elif case == 'nn':
            n_users, n_items = SHAPES['bio']
            exp, model = make_export(n_users, n_items, kind='nn')
            learn = fastai_learner(model, n_users, n_items)
            n_slice = 1024
            print(f"### nn: EmbeddingNN layers [100, 50] at the bio shape, {n_users:,} × {n_items}, embeddings {exp.user_factors.shape[1]} + {exp.item_factors.shape[1]}")
            comps = [('fastcf recommend (DataFrame)', c_fastcf(exp, args.k), 1),
                     ("model's own forward over all pairs, chunked, + topk", c_nn_forward(model, n_users, n_items, args.k), 1),
                     (f'fastai get_preds bs 4096 ({n_slice:,}-user slice, extrapolated)', c_get_preds(learn, n_users, n_items, args.k, 4096, n_slice), n_users / n_slice)]
            med = measure(comps, args.repeat, n_users * n_items)
            targets([('get_preds bs 4096 ÷ fastcf (NN)', med[comps[2][0]] / med[comps[0][0]], 20, False)])


if __name__ == '__main__': main()
