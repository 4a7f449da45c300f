"""Timings for issue 13's ranking modes, on random dot exports (one process, `--threads` torch threads, CPU unless --device).

1. Per-user candidates: `recommend(candidates=...)` with `--per-user` allowed items for each of `--users` users out of
   `--items`, against ranking the full catalogue for the same users (the issue's shape: 162,541 × 59,047, 50 each).
   The candidates path scores the full chunk and masks all but the allowed pairs, so it costs the full ranking plus a mask.
2. The reverse query at the bio shape transposed: `recommend_users` for `--targets` items over `--molecules` users, top
   `--k-users`, against `recommend` for `--targets` users over `--molecules` items (the same number of keys).

    python bench/bench_rules.py                      # a quick, scaled-down run (20,000 users)
    python bench/bench_rules.py --users 162541       # the issue's shape (minutes on 2 cores)
"""
import argparse, time
import numpy as np, pandas as pd, torch
from fastcf.predict import random_export, recommend
from fastcf.rules import recommend_users


def best_of(fn, repeat:int) -> float:
    "The fastest of `repeat` wall-clock runs of `fn`, in seconds"
    times = []
    for _ in range(repeat):
        start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--users', type=int, default=20_000); p.add_argument('--items', type=int, default=59_047)
    p.add_argument('--per-user', type=int, default=50); p.add_argument('--k', type=int, default=50)
    p.add_argument('--targets', type=int, default=488); p.add_argument('--molecules', type=int, default=45_854)
    p.add_argument('--k-users', type=int, default=100); p.add_argument('--factors', type=int, default=64)
    p.add_argument('--threads', type=int, default=2); p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--device', default='cpu')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    exp = random_export(a.users, a.items, a.factors, scale=0.1)
    rng = np.random.default_rng(0)
    allowed = pd.DataFrame({'user': np.repeat(exp.user_ids, a.per_user),
                            'item': rng.integers(0, a.items, a.users * a.per_user)})
    kw = dict(k=a.k, device=a.device, progress=False)
    full = best_of(lambda: recommend(exp, **kw), a.repeat)
    cand = best_of(lambda: recommend(exp, candidates=allowed, **kw), a.repeat)
    print(f"candidates: {a.users:,} users x {a.items:,} items, {a.per_user} allowed each, k={a.k}: "
          f"full catalogue {full:.2f} s, candidates {cand:.2f} s ({cand / full:.2f}x)")
    bio = random_export(a.molecules, a.targets, a.factors, scale=0.1)      # molecules x targets, as trained
    flipped = random_export(a.targets, a.molecules, a.factors, scale=0.1)  # the same shape, ranked the usual way
    kw = dict(k=a.k_users, device=a.device, progress=False)
    forward = best_of(lambda: recommend(flipped, **kw), a.repeat)
    reverse = best_of(lambda: recommend_users(bio, **kw), a.repeat)
    print(f"reverse query: {a.targets} targets x {a.molecules:,} molecules, top {a.k_users}: recommend {forward:.2f} s, "
          f"recommend_users {reverse:.2f} s ({reverse / forward:.2f}x)")


if __name__ == '__main__': main()
