"""Bad input to `fastcf.predict` gets a clear error, and `recommend(out=...)` writes files like any other tool: the four
columns even with no rows, the umask's mode, no temporaries left by SIGTERM, stale ones from a SIGKILL removed, and no
folders left by a failed run; and an export broken in memory is refused by every public function that takes one."""
import os, re, signal, subprocess, sys, textwrap, threading, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
import fastcf
from fastcf.testing import random_export
from fastcf.topk import topk_rows
from fastcf.predict import recommend, iter_topk, predict, similar_items, similar_users

torch.set_num_threads(1)
try: import pyarrow.parquet as pq
except ImportError: pq = None
needs_pyarrow = pytest.mark.skipif(pq is None, reason='needs pyarrow')
FORMATS = [pytest.param('recs.parquet', marks=needs_pyarrow), 'recs.csv']

@pytest.fixture(scope='module')
def exp(): return random_export(n_users=20, n_items=30)

@pytest.fixture(scope='module')
def seen(exp):
    rng = np.random.default_rng(0)
    return pd.DataFrame({'user': rng.integers(0, 20, 60), 'item': rng.integers(0, 30, 60)}).drop_duplicates()

def _hidden(folder): return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith('.'))


# 1. k and predict's input
K_USERS = {
    'recommend': lambda e, k: recommend(e, k=k),
    'iter_topk': lambda e, k: list(iter_topk(e, k=k)),
    'topk_rows': lambda e, k: topk_rows(torch.randn(4, 30), k),
    'similar_items': lambda e, k: similar_items(e, 3, k=k),
    'similar_users': lambda e, k: similar_users(e, 3, k=k),
}

@pytest.mark.parametrize('fn', list(K_USERS), ids=list(K_USERS))
@pytest.mark.parametrize('k', [2.5, float('nan'), '5', True, None, np.float32(3.0)])
def test_k_that_is_not_an_integer_is_a_type_error_naming_it(exp, fn, k):
    with pytest.raises(TypeError, match=re.escape(f"k must be a positive integer, got {k!r} ({type(k).__name__})")):
        K_USERS[fn](exp, k)

@pytest.mark.parametrize('fn', list(K_USERS), ids=list(K_USERS))
@pytest.mark.parametrize('k', [0, -3])
def test_k_below_one_is_a_value_error(exp, fn, k):
    with pytest.raises(ValueError, match=rf'k must be a positive integer \(at least 1\), got {k}'): K_USERS[fn](exp, k)

@pytest.mark.parametrize('fn', list(K_USERS), ids=list(K_USERS))
def test_numpy_integer_k_works(exp, fn):
    K_USERS[fn](exp, np.int64(3))


# 2. an empty result still has the four columns, typed like the vocab
@needs_pyarrow
@pytest.mark.parametrize('ids', ['int', 'str'])
def test_empty_parquet_has_the_typed_schema(tmp_path, ids):
    import pyarrow as pa
    e = random_export(n_users=5, n_items=6, ids=ids)
    path = recommend(e, users=[], out=tmp_path / 'recs.parquet')
    schema = pq.read_schema(path)
    id_type = pa.int64() if ids == 'int' else pa.string()
    assert schema.names == ['user', 'item', 'score', 'rank']
    assert schema.types == [id_type, id_type, pa.float32(), pa.int64()]
    assert pq.read_table(path).num_rows == 0

@needs_pyarrow
def test_fully_excluded_first_chunk_keeps_the_string_type(tmp_path):
    "A first chunk with no rows must not fix the item column's Parquet type to null"
    e = random_export(n_users=4, n_items=3, ids='str')
    everything = pd.DataFrame({'user': np.repeat(['u0', 'u1'], 3), 'item': ['i0', 'i1', 'i2'] * 2})
    path = recommend(e, k=2, exclude=everything, out=tmp_path / 'recs.parquet', chunk_bytes=1)   # one user per chunk
    back = pd.read_parquet(path)
    assert back.user.tolist() == ['u2', 'u2', 'u3', 'u3'] and back['rank'].tolist() == [1, 2, 1, 2]

def test_csv_header_only_once_after_an_empty_chunk(tmp_path):
    e = random_export(n_users=3, n_items=2)
    path = recommend(e, k=2, exclude=pd.DataFrame({'user': [0, 0], 'item': [0, 1]}), out=tmp_path / 'recs.csv', chunk_bytes=1)
    lines = path.read_text().splitlines()
    assert lines[0] == 'user,item,score,rank' and lines.count(lines[0]) == 1 and len(lines) == 5


# 3. exclude gets the ID checks users= gets
def test_exclude_of_strings_against_integer_ids_raises_naming_both(exp, seen):
    with pytest.raises(TypeError, match=r"exclude column 'user' IDs are strings .* 'user' IDs are integers"):
        recommend(exp, users=[0], k=5, exclude=seen.astype(str))
    with pytest.raises(TypeError, match=r"exclude column 'item' IDs are strings .* 'item' IDs are integers"):
        recommend(exp, users=[0], k=5, exclude=seen.assign(item=seen.item.astype(str)), unknown='drop')

def test_exclude_of_integers_against_string_ids_raises():
    e = random_export(n_users=5, n_items=6, ids='str')
    with pytest.raises(TypeError, match=r"IDs are integers .* 'user' IDs are strings such as \['u0'"):
        recommend(e, k=2, exclude=pd.DataFrame({'user': [0], 'item': ['i1']}))

def test_users_of_the_wrong_type_raise_even_with_unknown_drop(exp):
    for unknown in ('raise', 'drop'):
        with pytest.raises(TypeError, match=r"user IDs are strings such as \['0'\].*you passed strings"):
            recommend(exp, users=['0'], k=3, unknown=unknown)

def test_exclude_ids_that_are_integral_floats_still_exclude(exp, seen):
    ref = recommend(exp, k=5, exclude=seen)
    pd.testing.assert_frame_equal(recommend(exp, k=5, exclude=seen.astype(float)), ref)

def test_unknown_exclude_ids_follow_unknown(exp, seen):
    extra = pd.concat([seen, pd.DataFrame({'user': [0, 999], 'item': [555, 1]})], ignore_index=True)
    with pytest.raises(KeyError, match=r"exclude column 'user': 1 ID\(s\) not in 'user' vocab, e.g. \[999\]"):
        recommend(exp, k=5, exclude=extra)
    with pytest.warns(UserWarning, match=r"exclude: dropped 2 pair\(s\) with IDs not in the export, e.g. user IDs \[999\] and item IDs \[555\]"):
        got = recommend(exp, k=5, exclude=extra, unknown='drop')
    pd.testing.assert_frame_equal(got, recommend(exp, k=5, exclude=seen))

def test_excluded_pairs_never_come_back(exp, seen):
    recs = recommend(exp, k=30, exclude=seen)
    assert recs.merge(seen, on=['user', 'item']).empty
    assert len(recs) == 20 * 30 - len(seen)

@pytest.fixture(scope='module')
def learn():
    fastai = pytest.importorskip('fastai')
    from fastai.torch_core import set_seed
    from fastcf.data import synthetic_ratings
    from fastcf.learner import collab_learner, CollabDataLoaders
    warnings.filterwarnings('ignore', category=UserWarning)
    ratings = synthetic_ratings(n_users=40, n_items=25, seed=0)
    set_seed(0, reproducible=True)
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=0)
    learn = collab_learner(dls, n_factors=4, y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    learn.ratings = ratings
    return learn

def test_recommend_all_exclude_gets_the_same_checks(learn):
    import fastcf.learner   # noqa: F401 (adds Learner.recommend_all)
    ratings = learn.ratings
    user, item = ratings.columns[:2]
    seen = ratings[[user, item]]
    with pytest.raises(TypeError, match=rf"exclude column '{user}' IDs are strings"):
        learn.recommend_all(k=5, exclude_seen=False, exclude=seen.astype(str))
    train = learn.dls.train.items
    ids = {c: np.asarray(list(learn.dls.classes[c]), dtype=object) for c in (user, item)}
    known = pd.DataFrame({c: ids[c][train[c].to_numpy()] for c in (user, item)})     # the training pairs, as raw IDs
    recs = learn.recommend_all(k=5, exclude_seen=False, exclude=known)
    assert recs.merge(known, on=[user, item]).empty
    unknown = pd.DataFrame({user: [10_000], item: [known[item].iloc[0]]})
    with pytest.raises(KeyError, match=r"exclude column .*\[10000\]"):
        learn.recommend_all(k=5, exclude_seen=False, exclude=unknown)


# 4. the umask, as open() would
@pytest.mark.parametrize('name', FORMATS)
@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_file_mode_follows_the_umask(tmp_path, exp, name, umask, mode):
    old = os.umask(umask)
    try: path = recommend(exp, k=3, out=tmp_path / name)
    finally: os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(mode)


# 5. SIGTERM cleans up; a SIGKILL's temporary is removed by the next write
CHILD = textwrap.dedent("""
    import signal, sys, torch
    torch.set_num_threads(1)
    from fastcf.testing import random_export
    from fastcf.predict import recommend
    exp = random_export(n_users=200_000, n_items=20, n_factors=2)
    if sys.argv[2] == 'handler':
        def bye(signum, frame): sys.exit(3)
        signal.signal(signal.SIGTERM, bye)
    if sys.argv[2] == 'return':
        def note(signum, frame): print('handled', flush=True)
        signal.signal(signal.SIGTERM, note)
    print('ready', flush=True)
    try: recommend(exp, k=1, out=sys.argv[1], chunk_bytes=1, progress=False)     # one user per chunk: minutes of writing
    except InterruptedError as e:
        print(f"{type(e).__name__}: {e}", flush=True)
        sys.exit(4 if signal.getsignal(signal.SIGTERM) is note else 5)
    print('finished', flush=True)
""")

def _start_writer(out:Path, mode:str='default'):
    "A child process writing `out`, returned once its hidden temporary holds data (so it is mid-write)"
    env = dict(os.environ, PYTHONPATH=str(Path(fastcf.__file__).parent.parent))
    child = subprocess.Popen([sys.executable, '-c', CHILD, str(out), mode], env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == 'ready'
    deadline = time.monotonic() + 120        # only a guard against hanging, no assertion on time
    while time.monotonic() < deadline:
        tmps = [p for p in out.parent.glob(f'.{out.name}.*.tmp')] if out.parent.exists() else []
        if tmps and tmps[0].stat().st_size > 0: return child, tmps[0]
        assert child.poll() is None, 'the writer ended before it was signalled'
        time.sleep(0.02)
    child.kill(); raise AssertionError('no temporary file appeared')

@pytest.mark.slow                      # a child process writing for seconds, then a signal
@pytest.mark.parametrize('name', FORMATS)
def test_sigterm_mid_write_removes_the_temporary(tmp_path, name):
    out = tmp_path / 'new' / name
    child, tmp = _start_writer(out)
    assert tmp.name.startswith(f'.{name}.') and f'.{child.pid}.' in tmp.name      # the writer's pid is in the name
    child.send_signal(signal.SIGTERM)
    child.wait(60)
    assert child.returncode == -signal.SIGTERM                   # ended as the default action would
    assert not out.parent.exists()                               # no temporary, no target, and the folder it made is gone

@pytest.mark.slow                      # a child process writing for seconds, then a signal
def test_sigterm_goes_on_to_the_previous_handler(tmp_path):
    out = tmp_path / 'recs.csv'
    child, _ = _start_writer(out, 'handler')
    child.send_signal(signal.SIGTERM)
    child.wait(60)
    assert child.returncode == 3                                  # the program's own handler ran (sys.exit(3))
    assert list(tmp_path.iterdir()) == []

@pytest.mark.slow                      # a child process writing for seconds, then a signal
def test_sigterm_to_a_handler_that_returns_stops_the_write(tmp_path):
    out = tmp_path / 'recs.parquet' if pq is not None else tmp_path / 'recs.csv'
    child, _ = _start_writer(out, 'return')
    child.send_signal(signal.SIGTERM)
    child.wait(60)
    said = child.stdout.read().splitlines()
    assert said == ['handled', f"InterruptedError: SIGTERM while writing {str(out)!r}: nothing was written"]
    assert child.returncode == 4 and list(tmp_path.iterdir()) == []      # the program's handler is back in place

@pytest.mark.slow                      # a child process writing for seconds, then a signal
def test_sigkill_leaves_one_temporary_that_the_next_write_removes(tmp_path, exp):
    out = tmp_path / 'recs.csv'
    child, tmp = _start_writer(out)
    child.kill(); child.wait(60)
    assert _hidden(tmp_path) == [tmp.name] and not out.exists()   # documented: a SIGKILL can leave one hidden temporary
    assert f'.{child.pid}.' in tmp.name
    live = tmp.name.replace(f'.{child.pid}.', f'.{os.getppid()}.')      # same pattern, a process that is alive
    others = [live, '.recs.csv.1234.tmp', '.other.csv' + tmp.name[len('.recs.csv'):], '.recs.csv.tmp']
    for n in others: (tmp_path / n).write_text('x')
    recommend(exp, k=3, out=out)
    assert out.exists() and tmp.name not in _hidden(tmp_path) and _hidden(tmp_path) == sorted(others)

def test_writing_from_a_thread_and_the_handler_is_restored(tmp_path, exp):
    def mine(signum, frame): pass
    previous = signal.signal(signal.SIGTERM, mine)
    try:
        recommend(exp, k=3, out=tmp_path / 'main.csv')
        assert signal.getsignal(signal.SIGTERM) is mine
        errors = []
        def work():
            try: recommend(exp, k=3, out=tmp_path / 'thread.csv')
            except Exception as e: errors.append(e)
        t = threading.Thread(target=work); t.start(); t.join()
        assert errors == [] and (tmp_path / 'thread.csv').exists()
    finally: signal.signal(signal.SIGTERM, previous)


# 6. errors name the output path; a failed run leaves no folders
def _unwritable_folder(tmp_path) -> Path:
    if os.geteuid() != 0:
        folder = tmp_path / 'ro'; folder.mkdir(); folder.chmod(0o555)
        return folder
    if os.path.isdir('/sys') and not os.access('/sys', os.W_OK | os.X_OK) or _create_fails('/sys'): return Path('/sys')
    pytest.skip('running as root with no unwritable folder')

def _create_fails(folder) -> bool:
    try: fd = os.open(os.path.join(folder, '.fastcf-probe'), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except PermissionError: return True
    except OSError: return False
    os.close(fd); os.unlink(os.path.join(folder, '.fastcf-probe')); return False

@pytest.mark.parametrize('name', FORMATS)
def test_unwritable_folder_error_names_the_output(tmp_path, exp, name):
    folder = _unwritable_folder(tmp_path)
    out = folder / name
    try:
        with pytest.raises(PermissionError) as info: recommend(exp, k=3, out=out)
    finally:
        if folder != Path('/sys'): folder.chmod(0o755)
    assert f"cannot write out={str(out)!r}" in str(info.value) and '.tmp' not in str(info.value)

@pytest.mark.parametrize('name', FORMATS)
def test_failed_recommend_removes_the_folders_it_created(tmp_path, exp, name):
    (tmp_path / 'kept').mkdir()
    with pytest.raises(KeyError, match=r'\[777\]'): recommend(exp, users=[1, 777], out=tmp_path / 'kept' / 'a' / 'b' / name)
    assert [p.name for p in tmp_path.iterdir()] == ['kept'] and list((tmp_path / 'kept').iterdir()) == []
    with pytest.raises(TypeError): recommend(exp, exclude=pd.DataFrame({'user': ['1'], 'item': ['2']}), out=tmp_path / 'c' / name)
    assert [p.name for p in tmp_path.iterdir()] == ['kept']

def test_folders_that_exist_or_hold_other_files_stay(tmp_path, exp):
    out = tmp_path / 'a' / 'b' / 'recs.csv'
    path = recommend(exp, k=2, out=out)
    with pytest.raises(KeyError): recommend(exp, users=[777], out=out)
    assert path.exists()

LOST = textwrap.dedent("""
    import os, signal, sys
    import pandas as pd
    from fastcf.output import RecsWriter
    from fastcf.testing import random_export
    exp = random_export(5, 4, seed=0)
    def note(signum, frame): print('handled', flush=True)
    signal.signal(signal.SIGTERM, note)
    frame = pd.DataFrame({'user': [1], 'item': [2], 'score': [0.5], 'rank': [1]})
    try:
        with RecsWriter(sys.argv[1], exp) as w:
            w.write(frame)
            try: os.kill(os.getpid(), signal.SIGTERM)        # the handler's exception, lost in library code
            except BaseException: pass
            w.write(frame)
    except InterruptedError as e: print(type(e).__name__, flush=True)
    print('exists' if os.path.exists(sys.argv[1]) else 'absent', flush=True)
""")

@pytest.mark.slow                      # a child process, then a signal to itself
def test_sigterm_whose_exception_is_swallowed_still_stops_the_write(tmp_path):
    out = tmp_path / 'recs.csv'
    env = dict(os.environ, PYTHONPATH=str(Path(fastcf.__file__).parent.parent))
    res = subprocess.run([sys.executable, '-c', LOST, str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert res.stdout.splitlines() == ['handled', 'InterruptedError', 'absent'], (res.stdout, res.stderr)
    assert list(tmp_path.iterdir()) == []


# 7. an export changed in memory gets the checks `load` applies to a file, at every public entry point
def _broken(change):
    e = random_export(n_users=40, n_items=80, n_factors=3)
    change(e)
    return e

def _nan_item(e): e.item_factors[5, 1] = np.nan                   # row 5 is item ID 4 (row 0 is '#na#')
def _inf_user(e): e.user_factors[40, 0] = -np.inf                 # user ID 39
def _nan_bias(e): e.item_bias[80] = np.nan                        # item ID 79
def _nan_y_range(e): e.y_range = (np.nan, 5.0)
BROKEN = {  # what each change broke, in `load`'s words
    'nan item row': (_nan_item, "the item factors hold 1 non-finite value(s), the first in row 5 (item ID 4): nan"),
    'inf user row': (_inf_user, "the user factors hold 1 non-finite value(s), the first in row 40 (user ID 39): -inf"),
    'nan item bias': (_nan_bias, "the item bias hold 1 non-finite value(s), the first in row 80 (item ID 79): nan"),
    'nan y_range': (_nan_y_range, "y_range must be finite and increasing (low < high), got (nan, 5.0)"),
}

def _entry_points():
    from fastcf.predict import score_matrix
    from fastcf.rules import recommend_users
    from fastcf.explain import explain
    pairs = pd.DataFrame({'user': [0, 1], 'item': [4, 5]})
    return {'recommend': lambda e, d: recommend(e, k=3), 'recommend fill': lambda e, d: recommend(e, k=3, fill='popular'),
            'recommend out': lambda e, d: recommend(e, k=3, out=d / 'recs.csv'),
            'predict': lambda e, d: predict(e, pairs), 'recommend_users': lambda e, d: recommend_users(e, k=3),
            'score_matrix': lambda e, d: score_matrix(e), 'similar_items': lambda e, d: similar_items(e, [3]),
            'similar_users': lambda e, d: similar_users(e, [3]), 'explain': lambda e, d: explain(e, 0, 4)}

@pytest.mark.parametrize('change', list(BROKEN))
@pytest.mark.parametrize('entry', list(_entry_points()))
def test_an_export_broken_in_memory_is_refused_with_loads_message(tmp_path, change, entry):
    e = _broken(BROKEN[change][0])
    with pytest.raises(ValueError, match=re.escape(BROKEN[change][1])):
        _entry_points()[entry](e, tmp_path)
    assert list(tmp_path.iterdir()) == []                             # refused before anything was written

@pytest.mark.parametrize('change', list(BROKEN))
def test_loads_message_is_the_same(tmp_path, change):
    "The constructor (what `load` builds the export with) refuses the same arrays with the same words"
    from fastcf.export import CollabExport
    e = _broken(BROKEN[change][0])
    with pytest.raises(ValueError, match=re.escape(BROKEN[change][1])):
        CollabExport(e.kind, e.user_name, e.item_name, e.users, e.items, e.user_factors, e.item_factors,
                     e.user_bias, e.item_bias, e.y_range)

def test_the_check_does_not_change_a_good_answer(exp):
    "A sound export ranks as before: the lists of the unchecked engine, `iter_topk`, are `recommend`'s"
    recs = recommend(exp, k=4)
    rows = np.concatenate([items for _, items, _, valid in iter_topk(exp, k=4)])
    assert (exp.items.rows(recs.item.to_numpy()) == rows.ravel()).all()

def test_recommend_spark_refuses_before_spark_is_used():
    "No session is created or needed: the check runs before pyspark is imported"
    from unittest import mock
    from fastcf.spark import recommend_spark
    e = _broken(_nan_item)
    with mock.patch.dict(sys.modules, {'pyspark': None, 'pyspark.sql': None}):
        with pytest.raises(ValueError, match=re.escape(BROKEN['nan item row'][1])):
            recommend_spark(e, k=3)
        with pytest.raises(ValueError, match=re.escape(BROKEN['nan item row'][1])):
            recommend_spark(e, k=3, by='item')
