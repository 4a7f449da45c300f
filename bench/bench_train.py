"""Training speed and memory of `fastcf.cli.train`, before and after its fixes, measured in alternating fresh processes.

    python bench/bench_train.py speed                       # ms per batch: small demo vs full demo, ratio small/full
    python bench/bench_train.py memory --rows 1000000 --bs 64 --max-batches 1500
    python bench/bench_train.py memory --rows 1000000 --bs 0 --modes after --rounds 1   # a whole epoch at train's bs rule

'before' is the old training path: fastai's `CollabDataLoaders` + fastcf's `collab_learner` + `fit_one_cycle` with torch's
own thread count and fastai's `Recorder` keeping a tensor per batch (and the small demo at its old bs 256, lr 1e-2).
'before-1-thread' (memory only) is 'before' on one thread, to tell the two causes apart.
'after' is `fastcf.cli.train` as it is now: one torch thread, the Recorder's losses kept as floats, the small demo at
bs 512, lr 2e-2. Each measurement runs in its own process (clean RSS, its own thread setting), before and after
alternating, so that a shared machine's load hits both alike; say how loaded the machine was when you quote a figure.
The memory growth 'before' depends on the string-hash seed (with PYTHONHASHSEED=0 it did not show; with 1, 2 and 3
it did), so each round fixes one: round r runs with PYTHONHASHSEED=r.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096


def rss_mb() -> float:
    "Resident memory of this process in MB, from /proc/self/statm"
    return int(open('/proc/self/statm').read().split()[1]) * PAGE / 1e6


def worker(job:dict) -> dict:
    "One measurement, in this (fresh) process"
    import warnings; warnings.filterwarnings('ignore')
    import torch
    from fastai.callback.core import Callback
    from fastcf.data import synthetic_ratings
    from fastcf.evaluate import split_by_user
    class Probe(Callback):
        "Training time per batch and RSS every `every` training batches"
        order = 99
        def __init__(self, every, max_batches): self.every, self.max_batches = every, max_batches
        def before_fit(self): self.rss, self.train_time, self.n = {}, 0., 0
        def before_train(self): self.t0, self.threads = time.perf_counter(), torch.get_num_threads()
        def after_train(self): self.train_time += time.perf_counter() - self.t0
        def after_batch(self):
            if not self.training: return
            self.n += 1
            if self.n % self.every == 0: self.rss[self.n] = rss_mb()
            if self.max_batches and self.n >= self.max_batches:
                from fastai.callback.core import CancelFitException
                self.train_time += time.perf_counter() - self.t0
                raise CancelFitException()
    if job['task'] == 'speed':
        ratings = synthetic_ratings(preset=job['preset'], seed=42)
        user, item, rating = ratings.columns
        ratings, _ = split_by_user(ratings, user, item, frac=0.2, seed=42, min_train=2)
        kw = dict(y_range=(4., 10.5), valid_pct=0.1)
    else:
        ratings = synthetic_ratings(preset='bio', n_users=int(job['rows'] / 0.05 / 488) + 1, seed=0)
        user, item, rating = ratings.columns
        kw = dict(y_range=(4., 10.5), valid_pct=0.01)
    probe = Probe(job.get('every', 10**9), job.get('max_batches'))
    if job['mode'] == 'after':
        from fastcf.learner import train
        learn = train(ratings, user, item, rating, epochs=job['epochs'], lr=job['lr'], bs=job['bs'], cbs=[probe], log=lambda line: None, **kw)
    else:                                                                    # the training path before the fixes
        from fastai.collab import CollabDataLoaders
        from fastai.torch_core import set_seed
        from fastcf.learner import collab_learner
        if job['mode'] == 'before-1-thread': torch.set_num_threads(1)
        set_seed(42, reproducible=True)
        dls = CollabDataLoaders.from_df(ratings[[user, item, rating]], user_name=user, item_name=item, rating_name=rating,
                                        valid_pct=kw['valid_pct'], seed=42, bs=job['bs'])
        learn = collab_learner(dls, y_range=kw['y_range'], n_factors=50, cbs=[probe])
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(job['epochs'], job['lr'], wd=0.1)
    if job['bs'] is None: job['bs'] = learn.dls.train.bs
    out = dict(job, rows=len(ratings), batches=probe.n, ms_per_batch=1000 * probe.train_time / max(probe.n, 1),
               train_s=probe.train_time, rss=probe.rss, threads=probe.threads)
    out['valid_loss'] = float(learn.recorder.values[-1][1]) if learn.recorder.values else float('nan')
    import resource
    out['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    return out


def run(job:dict, hash_seed:int) -> dict:
    "`worker(job)` in a fresh process with string-hash seed `hash_seed` (the Recorder's growth depends on it: seed 0 hid it)"
    env = {**os.environ, 'PYTHONPATH': f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", 'PYTHONHASHSEED': str(hash_seed)}
    res = subprocess.run([sys.executable, __file__, 'worker', json.dumps(job)], capture_output=True, text=True, env=env)
    if res.returncode != 0: sys.exit(f"worker failed for {job}:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('task', choices=['speed', 'memory', 'worker'])
    p.add_argument('job', nargs='?', help=argparse.SUPPRESS)
    p.add_argument('--rounds', type=int, default=2, help='before/after pairs (alternating); round r runs with PYTHONHASHSEED=r')
    p.add_argument('--modes', default='before,before-1-thread,after', help='memory: which training paths, in order')
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--rows', type=int, default=1_000_000, help='memory: ratings to train on')
    p.add_argument('--bs', type=int, default=64, help="memory: batch size (0: train's rule by data size)")
    p.add_argument('--every', type=int, default=250, help='memory: read RSS every this many batches')
    p.add_argument('--max-batches', type=int, default=0, help='memory: stop after this many batches (0: the whole epoch)')
    args = p.parse_args()
    if args.task == 'worker': print(json.dumps(worker(json.loads(args.job)))); return
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.task == 'speed':
        cfg = {('before', 'bio-small'): (256, 1e-2), ('after', 'bio-small'): (512, 2e-2),
               ('before', 'bio'): (4096, 3e-2), ('after', 'bio'): (4096, 3e-2)}
        results = {k: [] for k in cfg}
        for round in range(args.rounds):
            for preset in ('bio-small', 'bio'):
                for mode in ('before', 'after'):
                    bs, lr = cfg[mode, preset]
                    r = run(dict(task='speed', mode=mode, preset=preset, bs=bs, lr=lr, epochs=args.epochs), round + 1)
                    results[mode, preset].append(r)
                    print(f"  {mode:6} {preset:9} bs {bs:4} threads {r['threads']}: {r['batches']} batches, "
                          f"{r['ms_per_batch']:.1f} ms/batch, {r['train_s']:.1f} s, valid loss {r['valid_loss']:.4f}", flush=True)
        print("| | small demo ms/batch | full demo ms/batch | small/full | small demo train s per epoch |")
        print("|---|---|---|---|---|")
        for mode in ('before', 'after'):
            small = min(r['ms_per_batch'] for r in results[mode, 'bio-small'])
            full = min(r['ms_per_batch'] for r in results[mode, 'bio'])
            small_s = min(r['train_s'] for r in results[mode, 'bio-small']) / args.epochs
            print(f"| {mode} | {small:.1f} | {full:.1f} | {small / full:.2f} | {small_s:.1f} |")
    else:
        every = args.every
        for round in range(args.rounds):
            for mode in args.modes.split(','):
                r = run(dict(task='memory', mode=mode, rows=args.rows, bs=args.bs or None, lr=5e-3, epochs=args.epochs,
                             every=every, max_batches=args.max_batches or None), round + 1)
                rss = {int(k): v for k, v in r['rss'].items()}
                first, last = min(rss), max(rss)
                growth = (rss[last] - rss[first]) / max(last - first, 1) * 1000
                print(f"  {mode:15} {r['rows']:,} rows bs {r['bs']}: {r['batches']:,} batches, {r['ms_per_batch']:.1f} ms/batch, "
                      f"RSS {rss[first]:.0f} MB at batch {first:,} -> {rss[last]:.0f} MB at {last:,}: {growth:.2f} MB per 1000 batches; peak {r['peak_rss_mb']:.0f} MB",
                      flush=True)


if __name__ == '__main__': main()
