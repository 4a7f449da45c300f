"""Benchmark: fastcf's top-50 for every user on Spark (`recommend_spark`) against single-process `recommend` and Spark ML's
`ALSModel.recommendForAllUsers(50)`, on local[N], for two shapes:

* bio: 45,854 users x 488 items, 50 factors;
* 1M:  1,000,000 users x 488 items, 50 factors (synthetic; the same item count, 22x the users).

Each Spark variant is forced in two ways: a `noop` write (every row is computed and handed to a sink that writes nothing) and
a parquet write to a temporary folder. Single-process `recommend` returns an in-memory DataFrame, or streams to one parquet
file. ALS is trained for one iteration on synthetic ratings in which every user and item appears (user u rates item
u mod n_items, plus `--extra` random ratings per user); its factors are materialised before timing, and only
`recommendForAllUsers(50)` + the write is timed. Times are medians over `--repeats` runs, after one uncounted warm-up of
each Spark variant (JIT, Python workers); single-process `recommend` needs none. ALS on the 1M shape takes minutes per
run, so it is run once, without warm-up, forced by noop only.

`--threads-check` instead compares 1 and 2 torch threads per task (2 tasks on 2 cores) on a dot export of 200,000 x 488
and a neural one of the bio shape.

Not run by the tests. Usage:  python bench/bench_spark.py [--shapes bio,1m] [--repeats 3] [--cores 2] [--no-als]
                              python bench/bench_spark.py --threads-check
Results are printed as a markdown table and saved to bench/results/spark.json.
"""
import argparse, json, os, platform, shutil, statistics, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch

warnings.filterwarnings('ignore', category=FutureWarning)
warnings.filterwarnings('ignore', category=UserWarning)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fastcf
from fastcf.testing import random_export
from fastcf.predict import recommend
from fastcf.spark import local_spark, recommend_spark

SHAPES = {'bio': (45_854, 488), '1m': (1_000_000, 488)}
N_FACTORS, K = 50, 50


def timed(fn, repeats:int, warmup:bool=True) -> list:
    "Wall-clock seconds of `repeats` calls of `fn` (after one uncounted call when `warmup`)"
    if warmup: fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
    return times


def force(df, how:str, folder:Path):
    "Evaluate every row of a Spark DataFrame: a noop write, or a parquet write to `folder`"
    if how == 'noop': df.write.format('noop').mode('overwrite').save()
    else: df.write.mode('overwrite').parquet(str(folder))


def als_model(spark, n_users:int, n_items:int, extra:int, seed:int=0):
    "Spark ML ALS, rank 50, trained for one iteration on synthetic ratings covering every user and item; factors cached"
    from pyspark.ml.recommendation import ALS
    rng = np.random.default_rng(seed)
    users = np.concatenate([np.arange(n_users), np.repeat(np.arange(n_users), extra)])
    items = np.concatenate([np.arange(n_users) % n_items, rng.integers(0, n_items, n_users * extra)])
    ratings = pd.DataFrame({'user': users.astype(np.int32), 'item': items.astype(np.int32),
                            'rating': rng.uniform(0.5, 5, len(users)).astype(np.float32)})
    df = spark.createDataFrame(ratings).repartition(spark.sparkContext.defaultParallelism * 4).cache()
    df.count()
    als = ALS(rank=N_FACTORS, maxIter=1, regParam=0.1, userCol='user', itemCol='item', ratingCol='rating', seed=seed)
    start = time.perf_counter()
    model = als.fit(df)
    n_u, n_i = model.userFactors.count(), model.itemFactors.count()      # materialise (ALS persists its factors)
    assert (n_u, n_i) == (n_users, n_items), (n_u, n_i)
    df.unpersist()
    return model, time.perf_counter() - start


def threads_check(spark, repeats:int):
    "recommend_spark with 1 vs 2 torch threads per task (local[2]: 2 vs 4 threads on 2 cores), dot 200k and NN bio shapes"
    cases = [('dot', 200_000, random_export(n_users=200_000, n_items=488, n_factors=N_FACTORS, scale=0.3)),
             ('nn (50+50 -> 64 -> 32)', 45_854,
              random_export(n_users=45_854, n_items=488, n_factors=N_FACTORS, kind='nn', layers=(64, 32)))]
    print('| model | users × items | torch threads per task | median (s), round 1 | median (s), round 2 |')
    print('|---|---|---:|---:|---:|')
    for name, n_users, exp in cases:
        res = {th: [] for th in (1, 2)}
        for _ in range(2):                              # two interleaved rounds, to see the drift of a shared machine
            for th in (1, 2):
                res[th].append(statistics.median(timed(
                    lambda: force(recommend_spark(exp, k=K, spark=spark, threads=th), 'noop', None), repeats)))
        for th in (1, 2): print(f"| {name} | {n_users:,} × 488 | {th} | {res[th][0]:.2f} | {res[th][1]:.2f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shapes', default='bio,1m')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--cores', type=int, default=2)
    p.add_argument('--memory', default='10g', help='driver (= executor, in local mode) JVM memory')
    p.add_argument('--extra', type=int, default=2, help='random ratings per user on top of the covering one (ALS)')
    p.add_argument('--no-als', action='store_true')
    p.add_argument('--threads-check', action='store_true', help='only compare 1 and 2 torch threads per task')
    args = p.parse_args()

    spark = local_spark('fastcf-bench', cores=args.cores, shuffle_partitions=2 * args.cores, driver_memory=args.memory)
    rows, info = [], dict(python=platform.python_version(), torch=torch.__version__, cores=args.cores,
                          cpus=os.cpu_count(), spark=spark.version, load=os.getloadavg()[0], fastcf=fastcf.__file__)
    print(f"# {info}", flush=True)
    if args.threads_check:
        try: threads_check(spark, args.repeats)
        finally: spark.stop()
        return
    tmp = Path(tempfile.mkdtemp(prefix='fastcf-bench-'))

    def add(shape, method, forced, times, note=''):
        n_users = SHAPES[shape][0]
        med = statistics.median(times)
        rows.append(dict(shape=shape, method=method, forced=forced, median_s=med, runs=[round(t, 2) for t in times],
                         users_per_s=n_users / med, note=note))
        print(f"{shape:4} {method:38} {forced:8} median {med:7.2f}s  runs {rows[-1]['runs']} {note}", flush=True)

    try:
        for shape in args.shapes.split(','):
            n_users, n_items = SHAPES[shape]
            exp = random_export(n_users=n_users, n_items=n_items, n_factors=N_FACTORS, scale=0.3, seed=0)
            torch.set_num_threads(args.cores)
            reps = args.repeats
            small = n_users <= 100_000
            add(shape, f'recommend, 1 process ({args.cores} threads)', 'memory',
                timed(lambda: recommend(exp, k=K, progress=False), reps, warmup=False))
            add(shape, f'recommend, 1 process ({args.cores} threads)', 'parquet',
                timed(lambda: recommend(exp, k=K, progress=False, out=tmp / 'single.parquet'), reps, warmup=False))
            for how in ('noop', 'parquet'):
                add(shape, f'recommend_spark, local[{args.cores}] (1 thread/task)', how,
                    timed(lambda: force(recommend_spark(exp, k=K, spark=spark), how, tmp / 'fastcf'), reps))
            if small:
                add(shape, f'recommend_spark, 2 threads/task (oversubscribed)', 'noop',
                    timed(lambda: force(recommend_spark(exp, k=K, spark=spark, threads=2), 'noop', tmp / 'x'), reps))
                add(shape, f'recommend_spark, 4 item shards (forced)', 'noop',     # the price of the sharded path
                    timed(lambda: force(recommend_spark(exp, k=K, spark=spark, shards=4), 'noop', tmp / 'x'), reps))
            if not args.no_als:
                model, fit_s = als_model(spark, n_users, n_items, args.extra)
                for how in ('noop', 'parquet') if small else ('noop',):
                    # on the large shape one run without warm-up: a run takes minutes
                    add(shape, f'ALS recommendForAllUsers, local[{args.cores}]', how,
                        timed(lambda: force(model.recommendForAllUsers(K), how, tmp / 'als'), reps if small else 1,
                              warmup=small),
                        note=f'(1-iteration fit: {fit_s:.0f}s, not timed)' if how == 'noop' else '')
                model.userFactors.unpersist(); model.itemFactors.unpersist()
            del exp
    finally:
        spark.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nlocal[{args.cores}] on a {info['cpus']}-CPU machine (load {info['load']:.1f} at start), Spark {info['spark']}, "
          f"torch {info['torch']}; top-{K}, {N_FACTORS} factors; median of {args.repeats} runs after a warm-up\n")
    print('| shape | method | forced by | median (s) | users/s | runs (s) |')
    print('|---|---|---|---:|---:|---|')
    for r in rows:
        n_users, n_items = SHAPES[r['shape']]
        print(f"| {n_users:,} × {n_items} | {r['method']} | {r['forced']} | {r['median_s']:.2f} | {r['users_per_s']:,.0f} | "
              f"{', '.join(map(str, r['runs']))} |")
    out = Path(__file__).parent / 'results' / 'spark.json'
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(info=info, rows=rows), indent=1))


if __name__ == '__main__': main()
