"""Timings for issue 13's ranking modes, on random dot exports (one process, `--threads` torch threads, CPU unless --device).

1. `candidates`: `recommend(candidates=...)` with `--per-user` allowed items for each of `--users` users out of
   `--items`, against ranking the full catalogue for the same users (the issue's shape: 162,541 × 59,047, 50 each).
   Under 5% of the users × items keys allowed (dot model), `recommend` scores only the allowed pairs ("pairs" path);
   otherwise it scores each chunk in full and masks all but the allowed pairs ("mask" path). The line says which ran.
2. `reverse`: the reverse query at the seed's bio shape transposed: `recommend_users` for `--targets` items over
   `--molecules` users, top `--k-users`, against `recommend` for `--targets` users over `--molecules` items (the same keys).
3. `sweep`: where the candidates path stops paying: `--sweep-users` × `--sweep-items`, top `--k`, candidates at
   densities 1%, 2%, 4%, 6%, 10%, 20% of the keys, given as a DataFrame of IDs and as a sparse matrix in row space
   (which skips the ID lookups), each against the full catalogue.

The first line names the machine (CPU model, cores, SIMD flags, load average, torch threads).

    python bench/bench_rules.py                                  # all three, scaled down (20,000 users for 1.)
    python bench/bench_rules.py --only candidates --users 162541 # the issue's shape (a few minutes on 2 cores)
    python bench/bench_rules.py --only reverse                   # the bio shape (seconds)
"""
import argparse, os, platform, subprocess, time
import numpy as np, pandas as pd, torch
import scipy.sparse as sp
from fastcf.testing import random_export
from fastcf.predict import recommend
from fastcf.rules import recommend_users

PAIRS_BELOW = 0.05   # the density under which `recommend` takes the pairs path (dot model): see nbs/25_predict.ipynb


def best_of(fn, repeat:int) -> float:
    "The fastest of `repeat` wall-clock runs of `fn`, in seconds"
    times = []
    for _ in range(repeat):
        start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
    return min(times)


def machine() -> str:
    "One line naming the CPU, its cores and SIMD flags, the load average and torch's threads"
    model, flags = platform.processor() or platform.machine(), []
    try:
        info = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(':', 1) for line in info.splitlines() if ':' in line)
        model = fields.get('Model name', model).strip()
        flags = [f for f in ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'amx_tile') if f in fields.get('Flags', '').split()]
    except (OSError, subprocess.CalledProcessError): pass
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    return (f"machine: {model}, {os.cpu_count()} cores, flags {' '.join(flags) or '?'}, load average {load:.2f}, "
            f"torch {torch.__version__} with {torch.get_num_threads()} thread(s)")


def allowed_pairs(exp, per_user:int, seed:int=0) -> pd.DataFrame:
    "`per_user` distinct random allowed items for every user of `exp`"
    rng = np.random.default_rng(seed)
    n_items = len(exp.item_ids)
    items = np.argsort(rng.random((len(exp.user_ids), n_items)), axis=1)[:, :per_user] if n_items <= 10_000 else \
            rng.integers(0, n_items, (len(exp.user_ids), per_user))        # large catalogues: a few repeats are harmless
    return pd.DataFrame({'user': np.repeat(exp.user_ids, per_user), 'item': np.asarray(exp.item_ids)[items.ravel()]})


def path_of(per_user:int, n_items:int) -> str:
    "The path `recommend(candidates=...)` takes for a dot model at this density"
    return 'pairs' if per_user < PAIRS_BELOW * n_items else 'mask'


def bench_candidates(a):
    exp = random_export(a.users, a.items, a.factors, scale=0.1)
    allowed = allowed_pairs(exp, a.per_user)
    kw = dict(k=a.k, device=a.device, progress=False)
    full = best_of(lambda: recommend(exp, **kw), a.repeat)
    cand = best_of(lambda: recommend(exp, candidates=allowed, **kw), a.repeat)
    print(f"candidates: {a.users:,} users x {a.items:,} items, {a.per_user} allowed each "
          f"({a.per_user / a.items:.2%} of the keys: {path_of(a.per_user, a.items)} path), k={a.k}: "
          f"full catalogue {full:.2f} s, candidates {cand:.2f} s ({cand / full:.2f}x)")


def bench_reverse(a):
    bio = random_export(a.molecules, a.targets, a.factors, scale=0.1)      # molecules x targets, as trained
    flipped = random_export(a.targets, a.molecules, a.factors, scale=0.1)  # the same shape, ranked the usual way
    kw = dict(k=a.k_users, device=a.device, progress=False)
    forward = best_of(lambda: recommend(flipped, **kw), a.repeat)
    reverse = best_of(lambda: recommend_users(bio, **kw), a.repeat)
    print(f"reverse query: {a.targets} targets x {a.molecules:,} molecules, top {a.k_users}: recommend {forward:.2f} s, "
          f"recommend_users {reverse:.2f} s ({reverse / forward:.2f}x)")


def bench_sweep(a):
    exp = random_export(a.sweep_users, a.sweep_items, a.factors, scale=0.1)
    kw = dict(k=a.k, device=a.device, progress=False)
    full = best_of(lambda: recommend(exp, **kw), a.repeat)
    print(f"sweep: {a.sweep_users:,} users x {a.sweep_items:,} items, k={a.k}: full catalogue {full:.2f} s")
    for density in (0.01, 0.02, 0.04, 0.06, 0.10, 0.20):
        per_user = max(1, round(density * a.sweep_items))
        allowed = allowed_pairs(exp, per_user)
        matrix = sp.csr_matrix((np.ones(len(allowed), np.float32), (exp.users.rows(allowed.user), exp.items.rows(allowed.item))),
                               shape=(exp.users.n_rows, exp.items.n_rows))           # the same pairs in row space: no ID lookups
        cand = best_of(lambda: recommend(exp, candidates=allowed, **kw), a.repeat)
        rows = best_of(lambda: recommend(exp, candidates=matrix, **kw), a.repeat)
        print(f"  {density:4.0%} allowed ({per_user} per user, {path_of(per_user, a.sweep_items)} path): DataFrame {cand:.2f} s "
              f"({cand / full:.2f}x the full catalogue), row-space matrix {rows:.2f} s ({rows / full:.2f}x)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--only', choices=['candidates', 'reverse', 'sweep'], help='run one benchmark (default: all three)')
    p.add_argument('--users', type=int, default=20_000); p.add_argument('--items', type=int, default=59_047)
    p.add_argument('--per-user', type=int, default=50); p.add_argument('--k', type=int, default=50)
    p.add_argument('--targets', type=int, default=488); p.add_argument('--molecules', type=int, default=45_854)
    p.add_argument('--k-users', type=int, default=100); p.add_argument('--factors', type=int, default=64)
    p.add_argument('--sweep-users', type=int, default=2_000); p.add_argument('--sweep-items', type=int, default=5_000)
    p.add_argument('--threads', type=int, default=2); p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--device', default='cpu')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(machine())
    for name, run in (('candidates', bench_candidates), ('reverse', bench_reverse), ('sweep', bench_sweep)):
        if a.only in (None, name): run(a)


if __name__ == '__main__': main()
