"""`fastcf.spark.recommend_spark` gives `fastcf.predict.recommend`'s result on a local[2] Spark session: dot and neural
models, integer and string IDs, exclusion, user and item subsets, unsharded and sharded paths. Each result is checked
against a dense float64 reference (`reference`, in conftest.py) with `fastcf.testing.check_ranking_frame`: the workers
score users in other batches than `recommend`, and equal inputs scored in different places of a product can differ in
the last bit, so items whose keys tie may trade places; where keys are exact integers the order is checked exactly."""
import copy, subprocess, sys, textwrap, warnings
import numpy as np, pandas as pd, pytest

pytestmark = pytest.mark.slow          # a JVM and a local Spark session: outside the quick tier

pytest.importorskip('pyspark', reason="the Spark tests need the 'spark' extra: pip install 'fastcf[spark]'")

from fastcf.testing import random_export
from fastcf.predict import recommend
from fastcf.spark import local_spark, recommend_spark, _n_shards
from fastcf.testing import check_ranking_frame
from conftest import dense_reference


@pytest.fixture(scope='session')
def spark():
    session = local_spark(app_name='fastcf-tests', cores=2, shuffle_partitions=4)
    yield session
    session.stop()


EXPORTS = {
    'dot-int': lambda: random_export(n_users=100, n_items=50),
    'dot-str': lambda: random_export(n_users=100, n_items=50, ids='str', seed=3),
    'nn-int': lambda: random_export(n_users=60, n_items=40, kind='nn', layers=(16, 8), seed=4),
}


def _seen(e, n=600, seed=0):
    "Random (user, item) pairs of the export, some repeated"
    rng = np.random.default_rng(seed)
    return pd.DataFrame({e.user_name: e.user_ids[rng.integers(0, len(e.user_ids), n)],
                         e.item_name: e.item_ids[rng.integers(0, len(e.item_ids), n)]})


def _to_spark(spark, df): return None if df is None else spark.createDataFrame(df)


def check(spark, e, users=None, exclude=None, k=50, items=None, **kw):
    "recommend_spark (collected, sorted by user row and rank) is the top `k` of the dense reference on the same arguments"
    got = recommend_spark(e, users=_to_spark(spark, users), exclude=_to_spark(spark, exclude), k=k, items=items, **kw).toPandas()
    got = got.assign(_row=e.users.rows(got[e.user_name])).sort_values(['_row', 'rank'], ignore_index=True).drop(columns='_row')
    assert list(got.columns[:4]) == [e.user_name, e.item_name, 'score', 'rank']
    keys, scores = dense_reference(e, None if users is None else users[e.user_name], items, exclude)
    check_ranking_frame(got, keys, k, ref_scores=scores, eps=1e-5)
    return got


@pytest.mark.parametrize('shards', [None, 3], ids=['unsharded', 'sharded'])
@pytest.mark.parametrize('case', ['all', 'exclude', 'subsets'])
@pytest.mark.parametrize('kind', list(EXPORTS))
def test_matches_recommend(spark, kind, case, shards):
    e = EXPORTS[kind]()
    if case == 'all': check(spark, e, k=10, shards=shards)
    elif case == 'exclude': check(spark, e, k=7, exclude=_seen(e), shards=shards)
    else:
        users = pd.DataFrame({e.user_name: e.user_ids[[5, 2, 9, 2, 33]]})        # a duplicate, out of order
        check(spark, e, users, k=8, items=e.item_ids[10:35], exclude=_seen(e), shards=shards)


def test_ties_and_saturated_scores(spark):
    "Exact ties go to the lower item; equal scores of different keys keep recommend's (key) order across shards"
    tied = random_export(n_users=30, n_items=400, n_factors=3, y_range=None, seed=1)
    tied.user_factors[:] = np.round(tied.user_factors * 2); tied.item_factors[:] = np.round(tied.item_factors * 2)
    tied.item_bias[:] = 0; tied.user_bias[:] = 0
    saturated = random_export(n_users=30, n_items=200, n_factors=8, scale=2., seed=2)
    for e in (tied, saturated): assert recommend(e, k=20).duplicated(['user', 'score']).any()
    keys = dense_reference(tied)[0].to_numpy()                  # exact integers: ties between equal keys go to the lower item
    for shards in (None, 7):
        check(spark, saturated, k=20, shards=shards)            # by key: a merge by score would fail here
        got = check(spark, tied, k=20, shards=shards)
        assert got.item.to_numpy().reshape(-1, 20).tolist() == tied.item_ids[np.argsort(-keys, axis=1, kind='stable')[:, :20]].tolist()


def test_many_batches_per_partition(spark):
    "Small Arrow batches: every batch is ranked on its own, exclusions stay with their users"
    e = EXPORTS['dot-str']()
    spark.conf.set('spark.sql.execution.arrow.maxRecordsPerBatch', '7')
    try:
        check(spark, e, k=5, exclude=_seen(e), partitions=3)
        check(spark, e, k=5, exclude=_seen(e), partitions=3, shards=2)
    finally: spark.conf.unset('spark.sql.execution.arrow.maxRecordsPerBatch')


def test_k_beyond_catalogue_and_few_left(spark):
    e = EXPORTS['dot-int']()
    got = check(spark, e, k=500, shards=3)
    assert len(got) == 100 * 50
    heavy = pd.DataFrame({'user': np.repeat([0, 1], 45), 'item': np.tile(np.arange(45), 2)})   # 5 items left for users 0, 1
    got = check(spark, e, users=pd.DataFrame({'user': [0, 1, 2]}), k=10, exclude=heavy, shards=2)
    assert got.groupby('user').size().tolist() == [5, 5, 10]


def test_auto_shards(spark):
    "shards=None shards by item-factor bytes; a tiny shard_bytes forces the sharded plan"
    e = EXPORTS['dot-int']()
    assert _n_shards(e, 50, None, 2 << 30) == 1
    assert _n_shards(e, 50, None, 50 * 9 * 4 // 5) == 5               # 8 factors + bias, 4 bytes each
    assert _n_shards(e, 50, 80, 2 << 30) == 50                          # never more shards than items
    df = recommend_spark(e, k=5, shard_bytes=50 * 9 * 4 // 5)
    assert 'Window' in df._jdf.queryExecution().optimizedPlan().toString()
    check(spark, e, k=5, shard_bytes=50 * 9 * 4 // 5)


def test_odd_column_names(spark):
    "Column names with dots and spaces are quoted, not parsed"
    e = copy.copy(EXPORTS['dot-int']())
    e.user.name, e.item.name = 'user.id', 'movie id'
    check(spark, e, users=pd.DataFrame({'user.id': [3, 1]}), k=4, exclude=_seen(e), shards=2)


def test_users_as_list_and_pandas_exclude(spark):
    e = EXPORTS['dot-int']()
    got = recommend_spark(e, users=[7, 3, 7], k=4, exclude=_seen(e), spark=spark).toPandas()
    keys, scores = dense_reference(e, [3, 7], exclude=_seen(e))
    check_ranking_frame(got.sort_values(['user', 'rank']), keys, 4, ref_scores=scores, eps=1e-5)


def test_unknown_ids(spark):
    e = EXPORTS['dot-int']()
    users_df = _to_spark(spark, pd.DataFrame({'user': [1, 2, 777]}))
    lazy = recommend_spark(e, users=users_df, k=3)                      # a DataFrame's IDs are checked in the workers
    with pytest.raises(Exception, match=r"not in 'user' vocab, e.g. \[777\]"): lazy.count()
    assert sorted(recommend_spark(e, users=users_df, k=3, unknown='drop').toPandas().user.unique()) == [1, 2]
    with pytest.raises(KeyError, match=r'\[777, 778\]'): recommend_spark(e, users=[1, 777, 778], spark=spark)   # a list: at once
    with pytest.raises(KeyError, match=r'\[555\]'): recommend_spark(e, items=[1, 555], spark=spark)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        items_df = _to_spark(spark, pd.DataFrame({'item': [1, 2, 555]}))
        got = recommend_spark(e, users=[4, 999], items=items_df, unknown='drop', k=5).toPandas()
    assert got.user.unique().tolist() == [4] and sorted(got.item) == [1, 2]
    messages = ' '.join(str(w.message) for w in caught)
    assert 'dropped 1 unknown item' in messages and 'dropped 1 unknown user' in messages


def test_empty_and_bad_arguments(spark):
    e = EXPORTS['dot-int']()
    empty = recommend_spark(e, items=[], spark=spark)
    assert empty.columns == ['user', 'item', 'score', 'rank'] and empty.count() == 0
    assert recommend_spark(e, users=_to_spark(spark, pd.DataFrame({'user': [1]})).limit(0), k=3).count() == 0
    with pytest.raises(ValueError, match='k must be'): recommend_spark(e, k=0, spark=spark)
    with pytest.raises(ValueError, match='unknown must be'): recommend_spark(e, unknown='mask', spark=spark)
    with pytest.raises(ValueError, match='shards must be'): recommend_spark(e, shards=0, spark=spark)
    with pytest.raises(KeyError, match="users has no column 'user'"):
        recommend_spark(e, users=_to_spark(spark, pd.DataFrame({'uid': [1]})))
    with pytest.raises(KeyError, match="exclude has no column 'item'"):
        recommend_spark(e, exclude=_to_spark(spark, pd.DataFrame({'user': [1], 'movie': [2]})), spark=spark)


@pytest.mark.parametrize('k', [2.5, float('nan'), True, '5'])
def test_k_that_is_not_an_integer_fails_on_the_driver_at_once(spark, k):
    "Before: k=2.5 passed the driver's `k < 1` check and failed later, on the workers, when the result was evaluated"
    e = EXPORTS['dot-int']()
    with pytest.raises(TypeError, match=r"k must be a positive integer, got .* \("):
        recommend_spark(e, k=k, spark=spark)            # no Spark job runs: the error comes before the lazy DataFrame exists


def test_numpy_integer_k_works(spark):
    e = EXPORTS['dot-int']()
    assert recommend_spark(e, k=np.int64(2), spark=spark).count() == 2 * len(e.user_ids)


def test_write_parquet(spark, tmp_path):
    "Spark's own writer, one part file per task; the result reads back as recommend's frame"
    e = EXPORTS['dot-str']()
    recommend_spark(e, k=6, exclude=_seen(e), spark=spark, shards=2).write.parquet(str(tmp_path / 'recs'))
    back = pd.read_parquet(tmp_path / 'recs')
    back = back.assign(_row=e.users.rows(back.user)).sort_values(['_row', 'rank'], ignore_index=True)
    keys, scores = dense_reference(e, exclude=_seen(e))
    check_ranking_frame(back, keys, 6, ref_scores=scores, eps=1e-5)
    assert [str(t) for t in back.dtypes[:4]] in (['object', 'object', 'float32', 'int64'], ['str', 'str', 'float32', 'int64'])


def test_local_spark_settings(spark):
    get = spark.conf.get
    assert spark.sparkContext.master == 'local[2]'
    assert (get('spark.driver.host'), get('spark.driver.bindAddress'), get('spark.ui.enabled'),
            get('spark.ui.showConsoleProgress'), get('spark.sql.shuffle.partitions'),
            get('spark.sql.execution.arrow.pyspark.enabled')) == ('127.0.0.1', '127.0.0.1', 'false', 'false', '4', 'true')


BLOCK = textwrap.dedent('''
    import sys, importlib.abc
    class _Block(importlib.abc.MetaPathFinder):
        def __init__(self, names): self.names = names
        def find_spec(self, name, path, target=None):
            if name.split('.')[0] in self.names: raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
''')


def _run(code):
    res = subprocess.run([sys.executable, '-c', BLOCK + textwrap.dedent(code)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_without_pyspark_names_the_extra():
    "fastcf.spark imports without pyspark; using it raises an ImportError naming the extra"
    out = _run('''
        sys.meta_path.insert(0, _Block({'pyspark', 'pyarrow'}))
        import fastcf.spark
        try: fastcf.spark.local_spark()
        except ImportError as e: print(e)
    ''')
    assert "pip install 'fastcf[spark]'" in out


def test_worker_side_without_fastai():
    "What the executors run imports neither fastai nor pyspark, and gives recommend's result"
    out = _run('''
        sys.meta_path.insert(0, _Block({'fastai'}))
        import numpy as np, pandas as pd
        from types import SimpleNamespace
        from fastcf.testing import random_export
        from fastcf.predict import recommend
        from fastcf.spark import _rank_partition, _user_side, _item_shard, _USER
        e = random_export()
        bc = lambda v: SimpleNamespace(value=v)
        batches = iter([pd.DataFrame({_USER: e.user_ids[:40]}), pd.DataFrame({_USER: e.user_ids[40:]})])
        got = pd.concat(_rank_partition(batches, bc(_user_side(e)), bc(_item_shard(e, np.arange(1, 51))), k=5,
                                        unknown='raise', threads=1, device='cpu', chunk_bytes=1 << 20, merge=False))
        from fastcf.testing import check_ranking_frame
        keys = e.user_factors[1:].astype(float) @ e.item_factors[1:].T.astype(float) + e.user_bias[1:, None] + e.item_bias[1:]
        u, i = np.meshgrid(np.arange(1, 101), np.arange(1, 51), indexing='ij')
        scores = e.score_rows(u.ravel(), i.ravel()).reshape(u.shape)
        assert list(got.columns) == ['user', 'item', 'score', 'rank']
        check_ranking_frame(got, pd.DataFrame(keys, e.user_ids, e.item_ids), 5, ref_scores=pd.DataFrame(scores, e.user_ids, e.item_ids))
        print('fastai' in sys.modules, 'pyspark' in sys.modules)
    ''')
    assert out.split() == ['False', 'False']
