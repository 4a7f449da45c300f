"""File size and load time of a fastcf export versus fastai's learn.export / load_learner, for the same model.

    python bench/bench_export.py                 # 162,541 users × 59,047 items × 64 factors (the MovieLens-25M shape)
    python bench/bench_export.py --users 200000 --items 1000

Load times are the median of --repeat loads, each after the file was read once (so from the page cache: this measures
parsing and copying, not the disk).
"""
import argparse, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch

warnings.filterwarnings('ignore')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--users', type=int, default=162_541); p.add_argument('--items', type=int, default=59_047)
    p.add_argument('--factors', type=int, default=64); p.add_argument('--repeat', type=int, default=5)
    p.add_argument('--ids', choices=['int', 'str'], default='int')
    args = p.parse_args()
    from fastai.collab import CollabDataLoaders
    from fastai.learner import load_learner
    from fastcf.learner import collab_learner
    from fastcf.export import from_learner, CollabExport
    n = max(args.users, args.items)
    users, items = np.arange(n) % args.users, np.arange(n) % args.items
    if args.ids == 'str': users, items = np.char.add('user', users.astype(str)), np.char.add('item', items.astype(str))
    df = pd.DataFrame({'user': users, 'item': items, 'rating': np.ones(n, np.float32)})
    dls = CollabDataLoaders.from_df(df, valid_pct=0.0, bs=64)
    learn = collab_learner(dls, n_factors=args.factors, y_range=(0, 5.5))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        learn.path = d
        learn.export('learner.pkl')
        exp = from_learner(learn)
        exp.save(d / 'model.fcf')
        times = {}
        for name, load in [('fastai load_learner', lambda: load_learner(d / 'learner.pkl')),
                           ('fastcf CollabExport.load', lambda: CollabExport.load(d / 'model.fcf'))]:
            load()
            ts = []
            for _ in range(args.repeat):
                t = time.perf_counter(); load(); ts.append(time.perf_counter() - t)
            times[name] = float(np.median(ts))
        size_pkl, size_fcf = (d / 'learner.pkl').stat().st_size, (d / 'model.fcf').stat().st_size
        back = CollabExport.load(d / 'model.fcf')
        assert np.array_equal(back.user_factors, exp.user_factors) and len(back.user_ids) == args.users
    print(f"model: EmbeddingDotBias, {args.users:,} users × {args.items:,} items × {args.factors} factors, {args.ids} IDs; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print('| file | size (MB) | load time (s, median) |\n|---|---:|---:|')
    print(f"| fastai `learn.export` (pickle) | {size_pkl / 1e6:.1f} | {times['fastai load_learner']:.3f} |")
    print(f"| fastcf `CollabExport.save` (.npz, no pickle) | {size_fcf / 1e6:.1f} | {times['fastcf CollabExport.load']:.3f} |")


if __name__ == '__main__': main()
