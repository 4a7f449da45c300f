"""Cost of `CollabExport.check` (the entry check of `recommend`, `predict`, …) next to a plain pass over the weights and `recommend`.

    python bench/bench_check.py                  # 162,541 users × 59,047 items × 64 factors (the MovieLens-25M shape)
    python bench/bench_check.py --rec-users 4000 # recommend for more users (its time is scaled to all users)

One thread. Times are medians of --repeat runs, the check and the plain pass alternating. `recommend` runs for
--rec-users users (k=50, every item) and its time is scaled linearly to all users: ranking is per user.
"""
import argparse, time, statistics, warnings
import numpy as np, torch

warnings.filterwarnings('ignore')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--users', type=int, default=162_541); p.add_argument('--items', type=int, default=59_047)
    p.add_argument('--factors', type=int, default=64); p.add_argument('--repeat', type=int, default=15)
    p.add_argument('--rec-users', type=int, default=2000); p.add_argument('--threads', type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from fastcf.testing import random_export
    from fastcf.predict import recommend
    exp = random_export(args.users, args.items, n_factors=args.factors, seed=0)
    tables = [exp.user_factors, exp.item_factors, exp.user_bias, exp.item_bias]
    def timed(f):
        t = time.perf_counter(); f(); return time.perf_counter() - t
    check, plain = [], []
    for _ in range(args.repeat):
        check.append(timed(exp.check))
        plain.append(timed(lambda: [float(a.sum()) for a in tables]))
    users = exp.user_ids[:args.rec_users]
    recommend(exp, users=users[:50], k=50, progress=False)                       # warm-up
    rec = statistics.median(timed(lambda: recommend(exp, users=users, k=50, progress=False)) for _ in range(3))
    rec_all = rec * args.users / len(users)
    import pandas as pd
    from fastcf.predict import predict
    pairs = pd.DataFrame({'user': exp.user_ids[:1000], 'item': exp.item_ids[np.arange(1000) % args.items]})
    pred = statistics.median(timed(lambda: predict(exp, pairs)) for _ in range(args.repeat))
    c, s = statistics.median(check), statistics.median(plain)
    print(f"{args.users:,} users × {args.items:,} items × {args.factors} factors, {args.threads} thread(s)")
    print(f"check():                 {c*1e3:8.1f} ms (median of {args.repeat})")
    print(f"plain pass (a.sum()):    {s*1e3:8.1f} ms   check / plain = {c/s:.2f}")
    print(f"recommend, {len(users):,} users: {rec:8.2f} s → all users ≈ {rec_all:,.0f} s; check / recommend(all) = {c/rec_all:.1e}")
    print(f"recommend, one call of {len(users):,} users: check is {c/rec:.1%} of it")
    print(f"predict, 1,000 pairs:    {pred*1e3:8.1f} ms, of which the check is {c/pred:.0%}")


if __name__ == '__main__': main()
