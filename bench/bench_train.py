"""Training speed and memory of `fastcf.cli.train`, before and after its fixes, measured in alternating fresh processes.

    python bench/bench_train.py speed                       # ms per batch: small demo vs full demo, ratio small/full
    python bench/bench_train.py memory --rows 1000000 --bs 64 --max-batches 1500
    python bench/bench_train.py memory --rows 1000000 --bs 0 --modes after --rounds 1   # a whole epoch at train's bs rule
    python bench/bench_train.py paths --data ml100k --rounds 3              # fastbook's recipe, fastai's path vs the fast one
    python bench/bench_train.py paths --data bio --max-batches 1500         # the same at the bio shape, ms per batch
    python bench/bench_train.py paths --data bio --recipe train             # `train`'s defaults, fast=False vs fast=True
    python bench/bench_train.py paths --data ml100k --device cuda           # on a GPU: both paths on CUDA

`paths` (issue 23) trains with fastbook's recipe (bs 64, 50 factors, y_range (0, 5.5), `fit_one_cycle(5, 5e-3, wd=0.1)`,
valid_pct 0.2, seed 42) or `train`'s defaults (`--recipe train`, valid_pct 0.1) in three ways, each in a fresh process,
alternating, `--rounds` times, torch's threads pinned (`--threads`): 'fastai' is `CollabDataLoaders` + `collab_learner`
(dense fastai Adam: today's path), 'tensor' is `TensorDataLoaders` + dense Adam (the data path alone), 'fast' is
`TensorDataLoaders` + `collab_learner(sparse=True)` (`LazyAdam`). It prints the medians: ms per training batch, wall time
(DataLoaders + fit), the same two as CPU (process) time, the steadier figure on a shared machine, validation MSE, and the
ratios fastai/fast (of the medians, and per round), with the CPU's name and the load average after each run.

'before' is the old training path: fastai's `CollabDataLoaders` + fastcf's `collab_learner` + `fit_one_cycle` with torch's
own thread count and fastai's `Recorder` keeping a tensor per batch (and the small demo at its old bs 256, lr 1e-2).
'before-1-thread' (memory only) is 'before' on one thread, to tell the two causes apart.
'after' is `fastcf.cli.train` as it is now: one torch thread, the Recorder's losses kept as floats, the small demo at
bs 512, lr 2e-2. Each measurement runs in its own process (clean RSS, its own thread setting), before and after
alternating, so that a shared machine's load hits both alike; say how loaded the machine was when you quote a figure.
The memory growth 'before' depends on the string-hash seed (with PYTHONHASHSEED=0 it did not show; with 1, 2 and 3
it did), so each round fixes one: round r runs with PYTHONHASHSEED=r.
"""
import argparse, json, os, platform, subprocess, sys, time
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


def paths_worker(job:dict) -> dict:
    "One `paths` measurement, in this (fresh) process"
    import warnings; warnings.filterwarnings('ignore')
    import resource, torch
    torch.set_num_threads(job['threads'])
    from fastai.callback.core import Callback, CancelFitException
    from fastai.torch_core import set_seed
    from fastcf.learner import collab_learner, train, FloatLosses
    if job['data'] == 'ml100k':
        from fastcf.data import movielens_100k
        ratings = movielens_100k(Path(os.environ.get('FASTCF_TEST_CACHE', Path.home() / '.cache' / 'fastcf-tests')) / 'ml-100k')
        ratings, y_range = ratings[['user', 'movie', 'rating']], (0, 5.5)
    else:
        from fastcf.data import synthetic_ratings
        ratings, y_range = synthetic_ratings(preset='bio', seed=42), (4., 10.5)
    user, item, rating = ratings.columns[:3]
    class Probe(Callback):
        "Training time per batch; wall time and validation loss at the end of each epoch; stop after `max_batches`"
        order = 99
        def before_fit(self): self.train_time, self.train_cpu, self.n, self.epochs, self.t_fit = 0., 0., 0, [], time.perf_counter()
        def before_train(self): self.t0, self.c0 = time.perf_counter(), time.process_time()
        def after_train(self): self._add()
        def _add(self):
            self.train_time += time.perf_counter() - self.t0
            self.train_cpu += time.process_time() - self.c0
        def after_batch(self):
            if not self.training: return
            self.n += 1
            if job['max_batches'] and self.n >= job['max_batches']:
                self._add()
                raise CancelFitException()
        def after_epoch(self): self.epochs.append(time.perf_counter() - self.t_fit)
    probe = Probe()
    start, start_cpu = time.perf_counter(), time.process_time()
    if job['recipe'] == 'train':
        learn = train(ratings, user, item, rating, y_range=y_range, valid_pct=0.1, threads=job['threads'], fast=job['mode'] != 'fastai',
                      cbs=[probe], log=lambda line: None)
        if job['mode'] == 'tensor': raise ValueError("--recipe train has the modes fastai and fast")
    else:
        from fastai.collab import CollabDataLoaders
        from fastcf.tensordata import TensorDataLoaders
        set_seed(42, reproducible=True)
        make = CollabDataLoaders if job['mode'] == 'fastai' else TensorDataLoaders
        dls = make.from_df(ratings, user_name=user, item_name=item, rating_name=rating, valid_pct=0.2, seed=42, bs=64,
                           device=job['device'])
        learn = collab_learner(dls, n_factors=50, y_range=y_range, sparse=job['mode'] == 'fast', cbs=[FloatLosses(), probe])
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(5, 5e-3, wd=0.1)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    values = [float(v[1]) for v in learn.recorder.values]
    return dict(job, rows=len(ratings), batches=probe.n, ms_per_batch=1000 * probe.train_time / max(probe.n, 1),
                cpu_ms_per_batch=1000 * probe.train_cpu / max(probe.n, 1), wall_s=wall, cpu_s=cpu,
                epoch_s=probe.epochs, valid=values, valid_mse=values[-1] if values else float('nan'),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3)


def cpu_name() -> str:
    "The CPU's model name (lscpu's, from /proc/cpuinfo)"
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown CPU'


def paths(args):
    "The `paths` task: alternate the training paths in fresh processes, print each run and the medians"
    import statistics
    modes = args.modes_paths.split(',')
    runs = {m: [] for m in modes}
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; torch threads {args.threads}; device {args.device}")
    for rnd in range(args.rounds):
        for mode in modes:
            job = dict(task='paths', mode=mode, data=args.data, recipe=args.recipe, threads=args.threads, device=args.device,
                       max_batches=args.max_batches or None)
            r = run(job, rnd + 1)
            runs[mode].append(r)
            print('  json:', json.dumps(r))
            print(f"  {mode:7} {args.data} ({r['rows']:,} ratings): {r['batches']:,} batches, {r['ms_per_batch']:.2f} ms/batch "
                  f"(CPU {r['cpu_ms_per_batch']:.2f}), wall {r['wall_s']:.1f} s (CPU {r['cpu_s']:.1f} s), valid MSE {r['valid_mse']:.4f}, epochs at {[round(t, 1) for t in r['epoch_s']]} s, "
                  f"valid {[round(v, 4) for v in r['valid']]}, peak RSS {r['peak_rss_mb']:.0f} MB; load {os.getloadavg()[0]:.1f}", flush=True)
    med = {m: {k: statistics.median(r[k] for r in runs[m]) for k in ('ms_per_batch', 'cpu_ms_per_batch', 'wall_s', 'cpu_s', 'valid_mse', 'peak_rss_mb')} for m in modes}
    print(f"\n| path ({args.data}, {args.recipe}, {args.device}) | ms per training batch | CPU ms per batch | wall s | CPU s | valid MSE | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m in modes: print(f"| {m} | {med[m]['ms_per_batch']:.2f} | {med[m]['cpu_ms_per_batch']:.2f} | {med[m]['wall_s']:.1f} | "
                          f"{med[m]['cpu_s']:.1f} | {med[m]['valid_mse']:.4f} | {med[m]['peak_rss_mb']:.0f} |")
    if 'fastai' in med and 'fast' in med:
        a, b = med['fastai'], med['fast']
        pairs = list(zip(runs['fastai'], runs['fast']))
        print(f"per round, fastai/fast per batch: {[round(x['ms_per_batch'] / y['ms_per_batch'], 2) for x, y in pairs]}, wall: "
              f"{[round(x['wall_s'] / y['wall_s'], 2) for x, y in pairs]}")
        print(f"\nfastai/fast: {a['ms_per_batch'] / b['ms_per_batch']:.2f}x per batch ({a['cpu_ms_per_batch'] / b['cpu_ms_per_batch']:.2f}x CPU), "
              f"{a['wall_s'] / b['wall_s']:.2f}x wall ({a['cpu_s'] / b['cpu_s']:.2f}x CPU); "
              f"valid MSE {b['valid_mse']:.4f} vs {a['valid_mse']:.4f} ({(b['valid_mse'] - a['valid_mse']) / a['valid_mse']:+.1%})")
    print(f"medians of {args.rounds}; load average at the end {os.getloadavg()[0]:.1f}")


def run(job:dict, hash_seed:int) -> dict:
    "`worker(job)` in a fresh process with string-hash seed `hash_seed` (the Recorder's growth depends on it: seed 0 hid it)"
    env = {**os.environ, 'PYTHONPATH': f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", 'PYTHONHASHSEED': str(hash_seed)}
    res = subprocess.run([sys.executable, __file__, 'worker', json.dumps(job)], capture_output=True, text=True, env=env)
    if res.returncode != 0: sys.exit(f"worker failed for {job}:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('task', choices=['speed', 'memory', 'paths', 'worker'])
    p.add_argument('job', nargs='?', help=argparse.SUPPRESS)
    p.add_argument('--rounds', type=int, default=2, help='before/after pairs (alternating); round r runs with PYTHONHASHSEED=r')
    p.add_argument('--modes', default='before,before-1-thread,after', help='memory: which training paths, in order')
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--rows', type=int, default=1_000_000, help='memory: ratings to train on')
    p.add_argument('--bs', type=int, default=64, help="memory: batch size (0: train's rule by data size)")
    p.add_argument('--every', type=int, default=250, help='memory: read RSS every this many batches')
    p.add_argument('--max-batches', type=int, default=0, help='memory: stop after this many batches (0: the whole epoch)')
    p.add_argument('--data', choices=['ml100k', 'bio'], default='ml100k', help='paths: MovieLens-100k or the bio preset (45,854 x 488)')
    p.add_argument('--recipe', choices=['fastbook', 'train'], default='fastbook', help="paths: fastbook's recipe or train's defaults")
    p.add_argument('--modes-paths', default='fastai,tensor,fast', help='paths: which training paths, in order')
    p.add_argument('--threads', type=int, default=1, help='paths: torch threads (pinned)')
    p.add_argument('--device', default='cpu', help="paths: 'cpu' or 'cuda'")
    args = p.parse_args()
    if args.task == 'worker':
        job = json.loads(args.job)
        print(json.dumps(paths_worker(job) if job['task'] == 'paths' else worker(job))); return
    if args.task == 'paths': return paths(args)
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
