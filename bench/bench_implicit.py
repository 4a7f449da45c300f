"""Implicit feedback: fastcf's BPR, BCE and sampled softmax vs the `implicit` package's ALS and BPR vs popularity.

    python bench/bench_implicit.py [--quick] [--seeds 3] [--out bench/results/implicit.csv]
    python bench/bench_implicit.py --timing [--rounds 3]    # ALS's fit vs fastcf's DataLoaders + fit, setting by setting

Data (one fixed per-user split for every method, seed 0):
- MovieLens-100k (the real data, from the recbole wheel as in `tests/conftest.py`): rating >= 4 is a positive.
- the 'bio-small' preset of `fastcf.data.synthetic_ratings` (3,000 molecules × 200 targets), active when pchembl >= 7.
  The full 'bio' preset (45,854 molecules, ~12× the positives) would take the grid past 15 minutes on 2 cores
  (`--bio bio` runs it anyway).
Each data set: test = 20% of each user's positives (a user with one positive keeps it in training); validation = 20% of
the rest. Every method gets the same grid budget, 2 × 2 × 1 (factors × regularisation × epochs), chosen on validation
by NDCG@10 with seed 0, then retrained on train + validation with seeds 0, 1, 2 and scored on test:
- fastcf (each loss): n_factors {16, 64} × wd {1e-3, 1e-1} (fastai's decoupled weight decay), 10 epochs of fit_one_cycle at lr 1e-2, n_neg 16, bs 1024,
  uniform negatives, dot model without y_range.
- implicit ALS: factors {16, 64} × regularization {1, 10}, 15 iterations, alpha 1 (the package's defaults otherwise).
- implicit BPR: factors {16, 64} × regularization {0.001, 0.01}, 100 iterations, learning rate 0.01.
- popularity: the most popular unseen training items (no parameters; the same for every seed).
Metrics at 10 (fastcf.evaluate, training positives excluded from every list): precision, recall, NDCG, MAP, hit rate,
catalogue coverage; and the training wall time of the final fit. Everything runs on 1 thread (torch and implicit).
"""
import argparse, os, sys, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1'); os.environ.setdefault('MKL_NUM_THREADS', '1')
import numpy as np, pandas as pd, torch, scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / 'tests'))
from fastai.torch_core import set_seed
from fastcf.data import movielens_100k, synthetic_ratings
from fastcf.evaluate import split_by_user, ranking_metrics, coverage
from fastcf.export import from_learner
from fastcf.predict import recommend
from fastcf.implicit import ImplicitDataLoaders, implicit_learner
from fastcf.evaluate import popularity_recs
from fastcf.sparse import LazyAdam

torch.set_num_threads(1)
K = 10
N_NEG = 16          # negatives per positive for every fastcf loss (4 ranks ML-100k ~4% lower for sampled softmax)
METRICS = ['precision', 'recall', 'ndcg', 'map', 'hit_rate', 'coverage']


def load_data(name):
    "Positives of 'ml100k' or of a bio preset ('bio-small', 'bio'), columns user, item"
    if name == 'ml100k':
        from conftest import _fetch_ml100k, CACHE
        df = movielens_100k(_fetch_ml100k(CACHE / 'ml-100k'))
        return df.loc[df.rating >= 4, ['user', 'movie']].rename(columns={'movie': 'item'}).reset_index(drop=True)
    df = synthetic_ratings(preset=name, seed=0)
    return df.loc[df.pchembl >= 7, ['molecule', 'target']].set_axis(['user', 'item'], axis=1).reset_index(drop=True)


def splits(pos):
    full, test = split_by_user(pos, 'user', 'item', frac=0.2, seed=0, min_train=1)
    inner, valid = split_by_user(full, 'user', 'item', frac=0.2, seed=1, min_train=1)
    return dict(inner=inner, valid=valid, full=full, test=test)


def score(recs, train, held, n_items):
    m = ranking_metrics(recs, held, k=K, user_name='user', item_name='item')
    return {**{k: m[k] for k in METRICS if k != 'coverage'}, 'coverage': coverage(recs, n_items, k=K)}


# ---- fastcf
def fit_fastcf(train, loss, n_factors, wd, seed, epochs=10):
    set_seed(seed, reproducible=True)
    dls = ImplicitDataLoaders.from_df(train, 'user', 'item', n_neg=N_NEG, valid_pct=0, bs=1024, seed=seed, device='cpu')
    learn = implicit_learner(dls, n_factors=n_factors, loss=loss)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-2, wd=wd)
    return learn

def recs_fastcf(learn, train, users):
    return recommend(from_learner(learn), users=users, k=K, exclude=train, device='cpu', progress=False)


# ---- implicit
class Codes:
    def __init__(self, pos):
        self.users, self.items = pd.Index(pd.unique(pos.user)), pd.Index(pd.unique(pos.item))
    def matrix(self, train):
        u, i = self.users.get_indexer(train.user), self.items.get_indexer(train.item)
        return sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(len(self.users), len(self.items)))

def fit_implicit(kind, codes, train, factors, reg, seed):
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    if kind == 'als': model = AlternatingLeastSquares(factors=factors, regularization=reg, iterations=15, alpha=1.0,
                                                      random_state=seed, num_threads=1)
    else: model = BayesianPersonalizedRanking(factors=factors, regularization=reg, learning_rate=0.01, iterations=100,
                                              random_state=seed, num_threads=1)
    ui = codes.matrix(train)
    model.fit(ui, show_progress=False)
    return model, ui

def recs_implicit(fitted, codes, users):
    model, ui = fitted
    rows = codes.users.get_indexer(users)
    ids, scores = model.recommend(rows, ui[rows], N=K, filter_already_liked_items=True)
    ok = ids >= 0
    r, c = np.nonzero(ok)
    return pd.DataFrame({'user': np.asarray(users)[r], 'item': codes.items.to_numpy()[ids[r, c]], 'score': scores[r, c], 'rank': c + 1})


GRIDS = {'fastcf bpr': [(f, w) for f in (16, 64) for w in (1e-3, 1e-1)],
         'fastcf bce': [(f, w) for f in (16, 64) for w in (1e-3, 1e-1)],
         'fastcf sampled_softmax': [(f, w) for f in (16, 64) for w in (1e-3, 1e-1)],
         'implicit ALS': [(f, r) for f in (16, 64) for r in (1.0, 10.0)],
         'implicit BPR': [(f, r) for f in (16, 64) for r in (0.001, 0.01)]}

def run_method(method, train, users, codes, params, seed):
    t = time.time()
    if method.startswith('fastcf'):
        fitted = fit_fastcf(train, method.split()[1], *params, seed)
        secs = time.time() - t
        return recs_fastcf(fitted, train, users), secs
    fitted = fit_implicit('als' if 'ALS' in method else 'bpr', codes, train, *params, seed)
    secs = time.time() - t
    return recs_implicit(fitted, codes, users), secs


def bench(name, seeds, quick=False):
    pos = load_data(name)
    s = splits(pos)
    codes = Codes(pos)
    n_items = pos.item.nunique()
    print(f"\n== {name}: {len(pos):,} positives, {pos.user.nunique():,} users × {n_items:,} items; "
          f"train {len(s['inner']):,} / valid {len(s['valid']):,} / test {len(s['test']):,}", flush=True)
    rows = []
    valid_users, test_users = pd.unique(s['valid'].user), pd.unique(s['test'].user)
    for method, grid in GRIDS.items():
        if quick: grid = grid[:1]
        best, best_ndcg = None, -1
        for params in grid:
            recs, _ = run_method(method, s['inner'], valid_users, codes, params, 0)
            ndcg = score(recs, s['inner'], s['valid'], n_items)['ndcg']
            print(f"  {method:24} {params}: valid ndcg@10 {ndcg:.4f}", flush=True)
            if ndcg > best_ndcg: best, best_ndcg = params, ndcg
        for seed in seeds:
            recs, secs = run_method(method, s['full'], test_users, codes, best, seed)
            rows.append(dict(data=name, method=method, params=str(best), seed=seed, train_s=secs, **score(recs, s['full'], s['test'], n_items)))
    pop = popularity_recs(s['full'], test_users, K, 'user', 'item')
    for seed in seeds: rows.append(dict(data=name, method='popularity', params='-', seed=seed, train_s=0.0, **score(pop, s['full'], s['test'], n_items)))
    return rows


def overheads(seed=0):
    "ML-100k, per epoch: seconds to draw the negatives, seconds of training, seconds of the ranking metrics"
    from fastcf.implicit import evaluate_implicit
    pos = load_data('ml100k')
    dls = ImplicitDataLoaders.from_df(pos, 'user', 'item', n_neg=4, n_valid=2, bs=1024, seed=seed, device='cpu')
    t = time.time()
    for _ in range(5): dls.train.negatives()
    sample_s = (time.time() - t) / 5
    learn = implicit_learner(dls, n_factors=64, loss='bpr', metrics=[])
    t = time.time()
    with learn.no_bar(), learn.no_logging(): learn.fit(3, 1e-2)
    epoch_s = (time.time() - t) / 3
    t = time.time()
    for _ in range(3): evaluate_implicit(learn)
    return sample_s, epoch_s, (time.time() - t) / 3


def torch_kernel(params, **kw):
    "`LazyAdam` on torch's operations (`kernel='torch'`): what a CPU without numba runs"
    return LazyAdam(params, kernel='torch', **kw)
torch_kernel.sparse_grads = True


def timing(rounds=3, threads=(1,)):
    "Why the timings disagree: ALS's fit against fastcf's DataLoaders + fit under each setting that differs, alternating, medians"
    import statistics
    pos = load_data('ml100k')
    s = splits(pos)
    codes, train = Codes(pos), s['full']
    cases = {   # name: (n_neg, valid_pct, wd, optimizer: 'sparse' | 'torch' | 'dense', threads, bs, epochs)
        'grid (16 neg, no valid), sparse (LazyAdam, the default)': (16, 0, 1e-1, 'sparse', 1, 1024, 10),
        'grid, LazyAdam on torch operations (kernel=\'torch\', no numba)': (16, 0, 1e-1, 'torch', 1, 1024, 10),
        'grid, dense Adam (sparse=False)': (16, 0, 1e-1, 'dense', 1, 1024, 10),
        '4 neg, no valid, sparse': (4, 0, 1e-1, 'sparse', 1, 1024, 10),
        '4 neg, valid 10% + ndcg/recall each epoch, sparse': (4, 0.1, 1e-1, 'sparse', 1, 1024, 10),
        '4 neg, no valid, dense': (4, 0, 1e-1, 'dense', 1, 1024, 10),
        '4 neg, no valid, dense, bs 4096': (4, 0, 1e-1, 'dense', 1, 4096, 10),
        '4 neg, no valid, sparse, bs 4096': (4, 0, 1e-1, 'sparse', 1, 4096, 10),
        **({'grid, sparse, 2 threads': (16, 0, 1e-1, 'sparse', 2, 1024, 10)} if 2 in threads else {}),
    }
    res = {k: [] for k in ['ALS (64, reg 10), 1 thread', *(['ALS, 2 threads'] if 2 in threads else []), *cases]}
    for rnd in range(rounds):
        for th in threads:
            t = time.perf_counter()
            from implicit.cpu.als import AlternatingLeastSquares
            model = AlternatingLeastSquares(factors=64, regularization=10.0, iterations=15, alpha=1.0, random_state=rnd, num_threads=th)
            model.fit(codes.matrix(train), show_progress=False)
            res['ALS (64, reg 10), 1 thread' if th == 1 else 'ALS, 2 threads'].append(dict(total=time.perf_counter() - t, dls=0., fit=0.))
        for name, (n_neg, valid_pct, wd, sparse, th, bs, epochs) in cases.items():
            torch.set_num_threads(th)
            set_seed(rnd, reproducible=True)
            t = time.perf_counter()
            dls = ImplicitDataLoaders.from_df(train, 'user', 'item', n_neg=n_neg, valid_pct=valid_pct, bs=bs, seed=rnd, device='cpu')
            t_dls = time.perf_counter()
            opt = dict(sparse=False) if sparse == 'dense' else dict(opt_func=torch_kernel) if sparse == 'torch' else {}
            learn = implicit_learner(dls, n_factors=64, loss='sampled_softmax', **opt)
            with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-2, wd=wd)
            end = time.perf_counter()
            res[name].append(dict(total=end - t, dls=t_dls - t, fit=end - t_dls))
            torch.set_num_threads(1)
        print(f"  round {rnd}: " + ', '.join(f"{k}: {v[-1]['total']:.2f} s" for k, v in res.items()) + f"; load {os.getloadavg()[0]:.1f}", flush=True)
    als = statistics.median(r['total'] for r in res['ALS (64, reg 10), 1 thread'])
    print(f"\nMovieLens-100k, {len(train):,} training positives; 10 epochs of fit_one_cycle(1e-2), 64 factors, sampled softmax; "
          f"medians of {rounds}, alternating; load {os.getloadavg()[0]:.1f} at the end\n")
    print('| what | DataLoaders s | fit s | total s | / ALS (1 thread) |')
    print('|---|---:|---:|---:|---:|')
    for k, v in res.items():
        med = {c: statistics.median(r[c] for r in v) for c in ('dls', 'fit', 'total')}
        print(f"| {k} | {med['dls']:.2f} | {med['fit']:.2f} | {med['total']:.2f} | {med['total'] / als:.1f}× |")


def table(df):
    agg = df.groupby(['data', 'method'], sort=False)
    cols = ['precision', 'recall', 'ndcg', 'map', 'hit_rate', 'coverage', 'train_s']
    lines = ['| data | method | best (factors, reg) | ' + ' | '.join(f"{c}@10" if c not in ('coverage', 'train_s') else c for c in cols) + ' |',
             '|' + '---|' * (len(cols) + 3)]
    for (data, method), g in agg:
        cells = [f"{g[c].mean():.4f} ± {g[c].std(ddof=1) if len(g) > 1 else 0:.4f}" if c != 'train_s' else f"{g[c].mean():.1f} ± {g[c].std(ddof=1) if len(g) > 1 else 0:.1f}" for c in cols]
        lines.append(f"| {data} | {method} | {g.params.iloc[0]} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, default=3)
    ap.add_argument('--quick', action='store_true', help='one grid point per method (a smoke run)')
    ap.add_argument('--bio', default='bio-small', choices=['bio-small', 'bio'], help='bio preset (bio: ~10× the positives, ~10 more minutes)')
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'implicit.csv'))
    ap.add_argument('--timing', action='store_true', help='only the timing comparison (fastcf settings vs ALS), ML-100k')
    ap.add_argument('--rounds', type=int, default=3, help='--timing: alternating rounds')
    ap.add_argument('--two-threads', action='store_true', help='--timing: also 2 torch threads and 2 ALS threads (slow when the machine is busy)')
    args = ap.parse_args()
    if args.timing: timing(args.rounds, (1, 2) if args.two_threads else (1,)); sys.exit()
    t0 = time.time()
    sample_s, epoch_s, metric_s = overheads()
    print(f"ML-100k, one epoch (bs 1024, n_neg 4, 64 factors): negatives drawn in {sample_s*1000:.0f} ms of a {epoch_s*1000:.0f} ms "
          f"epoch (train + validation loss); ranking metrics (ndcg/recall@10 on the held-out positives) {metric_s*1000:.0f} ms", flush=True)
    rows = []
    for name in ('ml100k', args.bio): rows += bench(name, list(range(args.seeds)), args.quick)
    df = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True); df.to_csv(args.out, index=False)
    print('\nmean ± std over seeds (test split):\n' + table(df))
    print(f"\ntotal {time.time() - t0:.0f} s")
