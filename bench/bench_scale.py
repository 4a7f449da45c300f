"""Training at scale (issue 23): `fastcf.learner.train`'s defaults against Spark ML's ALS on the same ratings and split.

    python bench/bench_scale.py --ratings 1_000_000            # quick: 6,502 users x 59,047 items (the 25M shape's users per rating)
    python bench/bench_scale.py --ratings 25_000_000           # the MovieLens-25M shape: 162,541 users x 59,047 items
    python bench/bench_scale.py --bio                          # the bio preset: train's defaults vs ALS rank 16, 10 iterations
    python bench/bench_scale.py --ratings 25_000_000 --engines fastcf --max-batches 550   # DataLoaders, RSS, ms/batch only

Data (`--ratings N`): `fastcf.data.synthetic_ratings` with int IDs, 8 planted factors, noise 0.3, ratings in [1, 5], at the
MovieLens-25M shape (162,541 users x 59,047 items) with the density that gives about N ratings; below 25M the users shrink
in proportion (the items and ratings per user stay), unless `--full-shape`. The frame is generated once, timed (with its
peak RSS, in its own process) and cached as .npy under `--cache`; later runs load it.

fastcf: `train(ratings, 'user', 'item', 'rating', epochs=5, y_range=None, valid_pct=0.1)` with every other argument at its
default (the fast path: `TensorDataLoaders`, sparse embeddings, `LazyAdam`, `default_bs`, `default_threads`), in a fresh
process; a callback records the wall time and validation MSE at the end of each epoch (times count from the call to
`train`, so they include building the DataLoaders), and the process's peak RSS (the cached frame's 0.5 GB at 25M included).

Spark: `pyspark.ml.recommendation.ALS` (rank `--rank`, 50 = train's factors, or 16 with `--bio`; regParam `--reg`;
`maxIter` each of `--spark-iters`, one fit each) on `local[--cores]`, trained on exactly fastcf's training rows (the
split `TensorDataLoaders.from_df` draws: `torch.manual_seed(seed)`, `randperm`, the first 10% held out), handed over as
parquet and cached in Spark's memory before the clock starts; the time is `ALS.fit`, and the RMSE is on the held-out rows
(`coldStartStrategy='drop'`: held-out rows of users or items absent from training are skipped; fastcf scores them with its
'#na#' row). Peak RSS is the JVM's (VmHWM).

'time to reach' a validation RMSE: fastcf's first epoch end at or below it; Spark's shortest fit (over `--spark-iters`) at
or below it. The target is the larger (worse) of the two best RMSEs, the one both reach. Results: a markdown table on
stdout and JSON in bench/results/scale-<name>.json. Not run by the tests.
"""
import argparse, json, os, platform, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL_USERS, FULL_ITEMS, FULL_RATINGS = 162_541, 59_047, 25_000_095      # MovieLens-25M


def peak_rss_mb() -> float:
    "This process's peak resident memory in MB"
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def cpu_info() -> str:
    "The CPU's model name, whether it has AVX-512, the cores"
    flags = next((l for l in open('/proc/cpuinfo') if l.startswith('flags')), '')
    name = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    return f"{name}, {'AVX-512' if 'avx512f' in flags else 'AVX2, no AVX-512' if 'avx2' in flags else 'no AVX2'}, {os.cpu_count()} cores"


def shape(args) -> tuple:
    "(n_users, n_items, density) for `--ratings`"
    n_users = FULL_USERS if args.full_shape else max(100, round(FULL_USERS * args.ratings / FULL_RATINGS))
    return n_users, FULL_ITEMS, args.ratings / (n_users * FULL_ITEMS)


def data_dir(args) -> Path: return Path(args.cache) / f"r{args.ratings}{'-full' if args.full_shape else ''}-s{args.seed}"


def generate(args) -> dict:
    "Generate the frame and cache its columns as .npy (run in its own process: its time and peak RSS)"
    import numpy as np
    from fastcf.data import synthetic_ratings
    n_users, n_items, density = shape(args)
    start = time.perf_counter()
    df = synthetic_ratings(n_users=n_users, n_items=n_items, density=density, n_factors=8, noise=0.3, ids='int',
                           scale=(1., 5.), columns=('user', 'item', 'rating'), seed=args.seed)
    gen_s = time.perf_counter() - start
    out = data_dir(args); out.mkdir(parents=True, exist_ok=True)
    for c in df.columns: np.save(out / f"{c}.npy", df[c].to_numpy())
    return dict(rows=len(df), n_users=n_users, n_items=n_items, generate_s=gen_s, peak_rss_mb=peak_rss_mb())


def load(args):
    "The cached frame (`--bio`: the bio preset, as bench_train's `paths --data bio`)"
    import numpy as np, pandas as pd
    if args.bio:
        from fastcf.data import synthetic_ratings
        return synthetic_ratings(preset='bio', seed=42).set_axis(['user', 'item', 'rating'], axis=1)
    d = data_dir(args)
    return pd.DataFrame({c: np.load(d / f"{c}.npy") for c in ('user', 'item', 'rating')})


def fastcf_worker(args) -> dict:
    "5 epochs (`--epochs`) of `train`'s defaults, per-epoch time and validation MSE"
    import torch
    from fastai.callback.core import Callback, CancelFitException
    from fastcf.learner import train
    t0 = time.perf_counter()
    ratings = load(args)
    load_s = time.perf_counter() - t0
    class Probe(Callback):
        "Per-epoch end times; with `--max-batches`, stop after that many training batches and time them"
        order = 99
        def before_fit(self): self.fit_start, self.threads, self.bs, self.n = time.perf_counter(), torch.get_num_threads(), self.dls.train.bs, 0
        def after_epoch(self):
            self.times.append(time.perf_counter() - start)
            print(f"  epoch {len(self.times) - 1} ends at {self.times[-1]:.1f} s, valid RMSE {float(self.recorder.values[-1][1]) ** 0.5:.4f}; "
                  f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
        def after_batch(self):
            if not self.training: return
            self.n += 1
            if self.n % 500 == 0: print(f"  batch {self.n:,} at {time.perf_counter() - start:.1f} s; load {os.getloadavg()[0]:.1f}",
                                        file=sys.stderr, flush=True)
            if not args.max_batches: return
            if self.n == 50: self.t50 = time.perf_counter()          # the first 50 batches are the warm-up
            if self.n >= args.max_batches:
                self.ms_per_batch = 1000 * (time.perf_counter() - self.t50) / (self.n - 50)
                raise CancelFitException()
    probe = Probe(); probe.times = []
    start = time.perf_counter()
    learn = train(ratings, 'user', 'item', 'rating', epochs=args.epochs, valid_pct=0.1, y_range=args.y_range,
                  cbs=[probe], log=lambda line: None, **({} if args.threads is None else dict(threads=args.threads)))
    wall = time.perf_counter() - start
    mse = [float(v[1]) for v in learn.recorder.values]
    res = dict(engine='fastcf', rows=len(ratings), load_s=load_s, dls_s=probe.fit_start - start, wall_s=wall,
               epoch_s=probe.times, rmse=[m ** 0.5 for m in mse], threads=probe.threads, bs=probe.bs,
               n_batches=len(learn.dls.train), peak_rss_mb=peak_rss_mb())
    if args.max_batches:        # an estimate of the whole fit: the measured batches' rate times every epoch's batches
        res.update(ms_per_batch=probe.ms_per_batch, batches_run=probe.n,
                   train_s_estimate=res['dls_s'] + args.epochs * len(learn.dls.train) * probe.ms_per_batch / 1000)
    return res


def split(ratings, seed:int, valid_pct:float=0.1):
    "The training and held-out rows `TensorDataLoaders.from_df` draws for this seed"
    import torch
    torch.manual_seed(seed)
    order = torch.randperm(len(ratings)).numpy()
    cut = int(valid_pct * len(ratings))
    return ratings.iloc[order[cut:]], ratings.iloc[order[:cut]]


def jvm_peak_mb() -> float:
    "Peak RSS (VmHWM) of this process's child processes (the JVM), MB"
    peak = 0.
    for pid in os.listdir('/proc'):
        if not pid.isdigit(): continue
        try:
            status = open(f'/proc/{pid}/status').read()
            if f"\nPPid:\t{os.getpid()}\n" not in status: continue
            peak = max(peak, int(status.split('VmHWM:')[1].split()[0]) / 1e3)
        except (OSError, IndexError): pass
    return peak


def spark_worker(args) -> dict:
    "ALS fits for each of `--spark-iters`, on fastcf's training rows; held-out RMSE"
    import shutil, tempfile
    from fastcf.spark import local_spark
    from pyspark.ml.recommendation import ALS
    from pyspark.ml.evaluation import RegressionEvaluator
    import pandas as pd
    ratings = load(args)
    for c in ('user', 'item'): ratings[c] = pd.factorize(ratings[c])[0]     # ALS takes int IDs (the bio preset's are strings)
    train_rows, valid_rows = split(ratings, 42)
    tmp = Path(tempfile.mkdtemp(prefix='fastcf-scale-'))
    try:
        for name, part in (('train', train_rows), ('valid', valid_rows)):
            part.astype({'user': 'int32', 'item': 'int32'}).to_parquet(tmp / f"{name}.parquet", index=False)
        n_rows = len(ratings)
        del ratings, train_rows, valid_rows
        spark = local_spark('fastcf-scale', cores=args.cores, shuffle_partitions=2 * args.cores, driver_memory=args.spark_memory)
        try:
            train_df = spark.read.parquet(str(tmp / 'train.parquet')).repartition(2 * args.cores).cache()
            valid_df = spark.read.parquet(str(tmp / 'valid.parquet')).cache()
            train_df.count(); valid_df.count()
            evaluator = RegressionEvaluator(metricName='rmse', labelCol='rating', predictionCol='prediction')
            fits = []
            for iters in args.spark_iters:
                als = ALS(rank=args.rank, maxIter=iters, regParam=args.reg, userCol='user', itemCol='item', ratingCol='rating',
                          coldStartStrategy='drop', seed=0)
                start = time.perf_counter()
                model = als.fit(train_df)
                model.userFactors.count(); model.itemFactors.count()
                fit_s = time.perf_counter() - start
                rmse = evaluator.evaluate(model.transform(valid_df))
                fits.append(dict(iters=iters, fit_s=fit_s, rmse=rmse))
                print(f"  spark ALS rank {args.rank} maxIter {iters}: fit {fit_s:.1f} s, valid RMSE {rmse:.4f}; "
                      f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
            return dict(engine='spark', rows=n_rows, fits=fits, spark=spark.version, jvm_peak_rss_mb=jvm_peak_mb(),
                        peak_rss_mb=peak_rss_mb())
        finally: spark.stop()
    finally: shutil.rmtree(tmp, ignore_errors=True)


def in_process(args, task:str) -> dict:
    "`task` in a fresh Python process (clean peak RSS), with this worktree first on the path"
    env = {**os.environ, 'PYTHONPATH': f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    res = subprocess.run([sys.executable, __file__, *sys.argv[1:], '--task', task], stdout=subprocess.PIPE, text=True, env=env)
    if res.returncode != 0: sys.exit(f"{task} failed (exit {res.returncode})")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out['load_after'] = os.getloadavg()[0]
    return out


def reach(times, rmses, target):
    "The first time whose RMSE is at or below `target` (None: never)"
    return next((t for t, r in zip(times, rmses) if r <= target + 1e-12), None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--ratings', type=lambda s: int(s.replace('_', '')), default=1_000_000, help='ratings to generate (e.g. 25_000_000)')
    p.add_argument('--full-shape', action='store_true', help='keep 162,541 users below 25M ratings (sparser)')
    p.add_argument('--bio', action='store_true', help="the bio preset instead (45,854 x 488, 1.12M ratings, y_range (4, 10.5)); ALS rank 16")
    p.add_argument('--engines', default='fastcf,spark', help='which to run, in order')
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--max-batches', type=int, default=0, help='fastcf: stop after this many training batches (> 50) and estimate the whole fit')
    p.add_argument('--threads', type=int, default=None, help="train's torch threads (default: train's rule, by the load)")
    p.add_argument('--rank', type=int, default=None, help='ALS rank (default: 50, train\'s factors; 16 with --bio)')
    p.add_argument('--reg', type=float, default=0.1, help='ALS regParam')
    p.add_argument('--spark-iters', default='10', help='ALS maxIter values, one fit each (comma-separated)')
    p.add_argument('--cores', type=int, default=2, help='Spark local[cores]')
    p.add_argument('--spark-memory', default='8g', help='Spark driver memory')
    p.add_argument('--seed', type=int, default=0, help='seed of the synthetic frame')
    p.add_argument('--cache', default='/tmp/fastcf-scale', help='where the generated frame is cached')
    p.add_argument('--task', default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.spark_iters = [int(i) for i in args.spark_iters.split(',')]
    args.rank = args.rank or (16 if args.bio else 50)
    args.y_range = (4., 10.5) if args.bio else None
    if args.task:
        import warnings; warnings.filterwarnings('ignore')
        sys.path.insert(0, str(ROOT))
        print(json.dumps({'generate': generate, 'fastcf': fastcf_worker, 'spark': spark_worker}[args.task](args))); return

    name = 'bio' if args.bio else f"{args.ratings}{'-full' if args.full_shape else ''}"
    print(f"# {cpu_info()}; load {os.getloadavg()[0]:.1f} at start; python {platform.python_version()}", flush=True)
    res = dict(cpu=cpu_info(), load_start=os.getloadavg()[0], command=' '.join(['python', 'bench/bench_scale.py', *sys.argv[1:]]))
    if not args.bio:
        if not (data_dir(args) / 'rating.npy').exists():
            res['data'] = in_process(args, 'generate')
            print(f"generated {res['data']['rows']:,} ratings ({res['data']['n_users']:,} x {res['data']['n_items']:,}) in "
                  f"{res['data']['generate_s']:.1f} s, peak RSS {res['data']['peak_rss_mb']:.0f} MB; load {res['data']['load_after']:.1f}", flush=True)
        else: print(f"using the cached frame in {data_dir(args)}", flush=True)
    for engine in args.engines.split(','):
        r = res[engine] = in_process(args, engine)
        if engine == 'fastcf' and args.max_batches:
            print(f"fastcf train, first {r['batches_run']:,} batches only: {r['rows']:,} ratings, bs {r['bs']}, {r['n_batches']:,} batches/epoch, "
                  f"{r['threads']} threads; DataLoaders {r['dls_s']:.1f} s, {r['ms_per_batch']:.1f} ms per training batch after 50; "
                  f"{args.epochs} epochs' training batches at that rate + DataLoaders (no validation): {r['train_s_estimate']:.0f} s "
                  f"(an estimate); peak RSS {r['peak_rss_mb']:.0f} MB; load {r['load_after']:.1f}", flush=True)
        elif engine == 'fastcf':
            print(f"fastcf train: {r['rows']:,} ratings, bs {r['bs']}, {r['n_batches']:,} batches/epoch, {r['threads']} threads; "
                  f"DataLoaders {r['dls_s']:.1f} s, wall {r['wall_s']:.1f} s, epochs end at {[round(t, 1) for t in r['epoch_s']]} s, "
                  f"valid RMSE {[round(x, 4) for x in r['rmse']]}; peak RSS {r['peak_rss_mb']:.0f} MB; load {r['load_after']:.1f}", flush=True)
        else:
            print(f"spark ALS: {[(f['iters'], round(f['fit_s'], 1), round(f['rmse'], 4)) for f in r['fits']]} (maxIter, fit s, RMSE); "
                  f"JVM peak RSS {r['jvm_peak_rss_mb']:.0f} MB; load {r['load_after']:.1f}", flush=True)
    if 'fastcf' in res and 'spark' in res and not args.max_batches:
        f, s = res['fastcf'], res['spark']
        target = max(min(f['rmse']), min(x['rmse'] for x in s['fits']))
        res['target_rmse'] = target
        res['fastcf_reach_s'] = reach(f['epoch_s'], f['rmse'], target)
        res['spark_reach_s'] = reach([x['fit_s'] for x in s['fits']], [x['rmse'] for x in s['fits']], target)
        spark_best = min(s['fits'], key=lambda x: x['rmse'])
        res['fastcf_reach_spark_s'] = reach(f['epoch_s'], f['rmse'], spark_best['rmse'])
        fmt = lambda t: '—' if t is None else f"{t:.1f}"
        print(f"\n{res['command']}\n{res['cpu']}; load {res['load_start']:.1f} at start, {s['load_after']:.1f} at the end\n")
        print(f"| engine | wall / fit s | valid RMSE (final) | reaches RMSE {target:.4f} after s | peak RSS MB |")
        print('|---|---:|---:|---:|---:|')
        print(f"| fastcf `train` ({args.epochs} epochs, bs {f['bs']}, {f['threads']} threads) | {f['wall_s']:.1f} | {f['rmse'][-1]:.4f} | "
              f"{fmt(res['fastcf_reach_s'])} | {f['peak_rss_mb']:.0f} |")
        for x in s['fits']:
            print(f"| Spark ALS local[{args.cores}], rank {args.rank}, maxIter {x['iters']} | {x['fit_s']:.1f} | {x['rmse']:.4f} | "
                  f"{fmt(x['fit_s'] if x['rmse'] <= target + 1e-12 else None)} | {s['jvm_peak_rss_mb']:.0f} (JVM) |")
        print(f"\nfastcf reaches Spark's best RMSE ({spark_best['rmse']:.4f}, maxIter {spark_best['iters']}, fit "
              f"{spark_best['fit_s']:.1f} s) after: {fmt(res['fastcf_reach_spark_s'])} s")
    out = ROOT / 'bench' / 'results' / f"scale-{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=1))


if __name__ == '__main__': main()
