"""The `fastcf` command through its real entry points (the console script and `python -m fastcf`), good and bad input."""
import json, os, shlex, shutil, subprocess, sys, zipfile
from pathlib import Path
import numpy as np, pandas as pd, pytest
from fastcf.testing import check_ranking_frame
from conftest import dense_reference

pytestmark = pytest.mark.slow          # every test starts `fastcf` processes, several train: outside the quick tier

FASTCF = shutil.which('fastcf')


def run(*args, cwd=None, env=None):
    cmd = [FASTCF] if FASTCF else [sys.executable, '-m', 'fastcf']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def assert_usage_error(res, *expected):
    "Exit code 2, one line on stderr naming the problem, no traceback"
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [l for l in res.stderr.splitlines() if l.strip() and 'Warning' not in l and 'warnings.warn' not in l]
    assert len(lines) == 1, res.stderr
    assert 'Traceback' not in res.stderr
    for e in expected: assert e in lines[0], lines[0]


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    from fastcf.data import synthetic_ratings
    from fastcf.evaluate import split_by_user
    d = tmp_path_factory.mktemp('cli')
    ratings = synthetic_ratings(preset='bio-small', n_users=300, n_items=50)
    train, held = split_by_user(ratings, frac=0.2, seed=0)
    train.to_csv(d / 'train.csv', index=False); held.to_csv(d / 'held.csv', index=False)
    res = run('fit', d / 'train.csv', '--user', 'molecule', '--item', 'target', '--rating', 'pchembl', '--epochs', 2,
              '--out', d / 'model.fcf')
    assert res.returncode == 0, res.stderr
    return d, train, held


def test_help_everywhere():
    for cmd in ([], ['demo'], ['fit'], ['recommend'], ['evaluate'], ['info']):
        res = run(*cmd, '--help')
        assert res.returncode == 0 and 'usage: fastcf' in res.stdout
        assert 'example (' in res.stdout
    res = subprocess.run([sys.executable, '-m', 'fastcf', '--version'], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith('fastcf ')


def test_fit_info_recommend_evaluate(files):
    d, train, held = files
    res = run('info', d / 'model.fcf')
    assert res.returncode == 0 and 'kind      dot' in res.stdout and '300 str IDs' in res.stdout
    for out in ('recs.csv', 'recs.parquet'):
        res = run('recommend', d / 'model.fcf', '--k', 10, '--exclude', d / 'train.csv', '--out', d / out)
        assert res.returncode == 0, res.stderr
    recs = pd.read_parquet(d / 'recs.parquet')
    pd.testing.assert_frame_equal(recs, pd.read_csv(d / 'recs.csv'), check_dtype=False)
    assert list(recs.columns) == ['molecule', 'target', 'score', 'rank'] and len(recs) == 3000
    assert recs.merge(train, on=['molecule', 'target']).empty            # seen pairs excluded
    res = run('evaluate', d / 'recs.parquet', d / 'held.csv', '--k', 10, '--relevance', 7, '--json')
    assert res.returncode == 0, res.stderr
    metrics = json.loads(res.stdout)
    from fastcf.evaluate import ranking_metrics
    expected = ranking_metrics(recs, held, k=10, relevance=7)           # the files' numbers, computed in this process
    for name in ('precision', 'recall', 'ndcg', 'map', 'hit_rate'): assert metrics[name] == pytest.approx(expected[name], rel=1e-6), name
    assert set(metrics) >= {'map_all', 'mrr', 'n_users', 'coverage'}


def test_recommend_users_file_and_module_entry_point(files):
    d, train, _ = files
    users = train.molecule.unique()[:5]
    (d / 'users.txt').write_text('\n'.join(users) + '\n')
    res = subprocess.run([sys.executable, '-m', 'fastcf', 'recommend', str(d / 'model.fcf'), '--users', str(d / 'users.txt'),
                          '--k', '3', '--out', str(d / 'some.csv')], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert sorted(pd.read_csv(d / 'some.csv').molecule.unique()) == sorted(users)


def _write(d, name, text):
    (d / name).write_text(text)
    return d / name


def test_bad_input(files):
    d, train, _ = files
    fit = lambda f, *extra: run('fit', f, '--user', 'molecule', '--item', 'target', '--rating', 'pchembl', *extra, '--out', d / 'bad.fcf')
    assert_usage_error(fit(d / 'missing.csv'), "does not exist")
    assert_usage_error(run('fit', d / 'train.csv', '--user', 'molecul', '--item', 'target', '--rating', 'pchembl', '--out', d / 'bad.fcf'),
                       "no column 'molecul'", "did you mean 'molecule'?", 'molecule, target, pchembl')
    assert_usage_error(fit(_write(d, 'text.csv', 'molecule,target,pchembl\nA,B,7\nA,C,high\n')), "non-numeric value 'high'")
    assert_usage_error(fit(_write(d, 'nan.csv', 'molecule,target,pchembl\nA,B,7\nA,C,\n')), "column 'pchembl' is empty on 1 row(s)")
    assert_usage_error(fit(_write(d, 'dup.csv', 'molecule,target,pchembl\nA,B,7\nA,B,6\n')), 'duplicate (molecule, target)')
    assert_usage_error(fit(_write(d, 'empty.csv', '')), 'is empty')
    assert_usage_error(fit(_write(d, 'header.csv', 'molecule,target,pchembl\n')), 'has no rows')
    assert not (d / 'bad.fcf').exists()
    rec = lambda *extra: run('recommend', d / 'model.fcf', *extra, '--out', d / 'bad.csv')
    assert_usage_error(rec('--users', _write(d, 'unknown.txt', 'CHEMBL_NOPE\nCHEMBL_NADA\n')), "['CHEMBL_NOPE', 'CHEMBL_NADA']")
    assert_usage_error(rec('--exclude', _write(d, 'ex.csv', 'mol,target\nA,B\n')), "no column 'molecule'")
    assert_usage_error(run('recommend', d / 'train.csv', '--out', d / 'bad.csv'), 'not a readable fastcf export')
    assert_usage_error(run('recommend', d / 'model.fcf', '--out', d / 'bad.json'), 'must end in .parquet or .csv')
    assert not (d / 'bad.csv').exists()
    assert_usage_error(run('info', d), 'is a directory')
    assert_usage_error(run('evaluate', d / 'nope.parquet', d / 'held.csv'), 'does not exist')
    assert_usage_error(run('evaluate', d / 'train.csv', d / 'held.csv'), "no 'score' column")


def test_unknown_drop_warns_and_continues(files):
    d, train, _ = files
    (d / 'mixed.txt').write_text(f"{train.molecule.iloc[0]}\nCHEMBL_NOPE\n")
    res = run('recommend', d / 'model.fcf', '--users', d / 'mixed.txt', '--unknown', 'drop', '--k', 2, '--out', d / 'mixed.csv')
    assert res.returncode == 0 and 'dropped 1 unknown user ID' in res.stderr
    assert len(pd.read_csv(d / 'mixed.csv')) == 2


# ---- the reverse query: --by item

@pytest.mark.parametrize('ids, kind', [('int', 'dot'), ('str', 'nn')])
def test_recommend_by_item_is_recommend_users(tmp_path, ids, kind):
    "`--by item` writes `recommend_users`' answer for the same --items, --users and --exclude (checked against float64)"
    from fastcf.testing import random_export
    exp = random_export(60, 15, kind=kind, ids=ids, seed=3)
    exp.save(tmp_path / 'model.fcf')
    targets, pool = exp.item_ids[[1, 4, 9, 14]], exp.user_ids[5:50]
    pd.Series(targets, name='item').to_csv(tmp_path / 'targets.csv', index=False)
    (tmp_path / 'pool.txt').write_text('\n'.join(map(str, pool)) + '\n')
    seen = pd.DataFrame({'user': exp.user_ids[[5, 6, 7, 40]], 'item': exp.item_ids[[1, 1, 4, 14]]})
    seen.to_csv(tmp_path / 'seen.csv', index=False)
    res = run('recommend', tmp_path / 'model.fcf', '--by', 'item', '--k', 7, '--items', tmp_path / 'targets.csv',
              '--users', tmp_path / 'pool.txt', '--exclude', tmp_path / 'seen.csv', '--out', tmp_path / 'hits.parquet')
    assert res.returncode == 0, res.stderr
    assert 'wrote 28 recommendations (top-7) for 4 items' in res.stdout, res.stdout
    hits = pd.read_parquet(tmp_path / 'hits.parquet')
    assert list(hits.columns) == ['item', 'user', 'score', 'rank']
    keys, scores = dense_reference(exp, pool, targets, seen)              # recommend_users' answer, checked against float64
    check_ranking_frame(hits, keys.T, 7, ref_scores=scores.T)
    assert hits.merge(seen, on=['user', 'item']).empty and set(hits.user) <= set(pool)


def test_recommend_by_item_after_fold_in(files):
    "With --new-users, --by item ranks the folded-in users (the users considered, as for --by user) for each item"
    from fastcf.export import CollabExport
    from fastcf.foldin import fold_in
    d, train, _ = files
    new = pd.DataFrame({'molecule': ['CHEMBL_NEW1'] * 3 + ['CHEMBL_NEW2'] * 3 + ['CHEMBL_NEW3'] * 2,
                        'target': train.target.unique()[[0, 1, 2, 3, 4, 5, 0, 6]], 'pchembl': [8., 7., 5., 6., 9., 4.5, 7.5, 6.]})
    new.to_csv(d / 'new_by_item.csv', index=False)
    res = run('recommend', d / 'model.fcf', '--by', 'item', '--new-users', d / 'new_by_item.csv', '--k', 2, '--out', d / 'new_hits.csv')
    assert res.returncode == 0, res.stderr
    hits = pd.read_csv(d / 'new_hits.csv')
    exp = fold_in(CollabExport.load(d / 'model.fcf'), new, rating_name='pchembl')
    keys, scores = dense_reference(exp, new.molecule.unique())
    check_ranking_frame(hits, keys.T, 2, ref_scores=scores.T)
    assert list(hits.columns) == ['target', 'molecule', 'score', 'rank'] and hits.target.nunique() == 50


def test_recommend_by_bad_value(files):
    d, _, _ = files
    assert_usage_error(run('recommend', d / 'model.fcf', '--by', 'items', '--out', d / 'by.csv'), "argument --by: invalid choice: 'items'")
    assert not (d / 'by.csv').exists()


def test_recommend_by_item_names_the_sides(files):
    "Unknown item IDs are dropped as items, and a run with nothing left says which side was ranked"
    d, train, _ = files
    (d / 'some_targets.txt').write_text(f"{train.target.iloc[0]}\nP_NOPE\n")
    res = run('recommend', d / 'model.fcf', '--by', 'item', '--items', d / 'some_targets.txt', '--unknown', 'drop', '--k', 3,
              '--out', d / 'some_hits.csv')
    assert res.returncode == 0 and "dropped 1 unknown item ID(s) not in the export, e.g. ['P_NOPE']" in res.stderr, res.stderr
    assert 'for 1 items' in res.stdout and len(pd.read_csv(d / 'some_hits.csv')) == 3
    one = train.target.iloc[0]
    pd.DataFrame({'molecule': train.molecule.unique(), 'target': one}).to_csv(d / 'all_of_one.csv', index=False)
    res = run('recommend', d / 'model.fcf', '--by', 'item', '--items', d / 'some_targets.txt', '--unknown', 'drop',
              '--exclude', d / 'all_of_one.csv', '--out', d / 'none_hits.csv')
    assert_usage_error(res, 'nothing to recommend: every candidate user is excluded for every item asked for')
    assert not (d / 'none_hits.csv').exists()


# ---- numeric options: each bad value is exit 2 and one line naming it, before anything is read or written
# (every numeric option of every command is checked in-process in nbs/70_cli.ipynb; here, through the real entry point)

@pytest.mark.parametrize('extra, expected', [
    (('--epochs', 0), "argument --epochs: must be a whole number >= 1, got '0'"),
    (('--bs', 0), "argument --bs: must be a whole number >= 1 and < 2,147,483,648, got '0'"),
    (('--n-factors', 0), "argument --n-factors: must be a whole number >= 1, got '0'"),
    (('--lr', 'nan'), "argument --lr: must be a finite number > 0, got 'nan'"),
    (('--wd', 'inf'), "argument --wd: must be a finite number >= 0, got 'inf'"),
    (('--valid-pct', 0), "argument --valid-pct: must be a finite number > 0 and < 1, got '0'"),
    (('--nn', '--layers', '100,0'), "argument --layers: must be comma-separated sizes >= 1 such as 100,50, got '100,0'"),
    (('--epochs', 2.5), "argument --epochs: must be a whole number >= 1, got '2.5'"),
    (('--threads', 0), "argument --threads: must be a whole number >= 1, got '0'"),
])
def test_fit_bad_numbers(tmp_path, extra, expected):
    (tmp_path / 'r.csv').write_text('u,i,r\n' + ''.join(f'{u},{i},{(u + i) % 5 + 1}\n' for u in range(20) for i in range(10)))
    res = run('fit', tmp_path / 'r.csv', '--user', 'u', '--item', 'i', '--rating', 'r', *extra, '--out', tmp_path / 'm.fcf')
    assert_usage_error(res, expected)
    assert not (tmp_path / 'm.fcf').exists()


@pytest.mark.parametrize('argv, expected', [
    (('recommend', 'model.fcf', '--k', 0, '--out', 'r.csv'), "argument --k: must be a whole number >= 1, got '0'"),
    (('recommend', 'model.fcf', '--device', 'tpu', '--out', 'r.csv'), "argument --device: must be cpu, cuda or cuda:N, got 'tpu'"),
    (('evaluate', 'recs.csv', 'held.csv', '--k', 0), "argument --k: must be a whole number >= 1, got '0'"),
    (('evaluate', 'recs.csv', 'held.csv', '--relevance', 'nan'), "argument --relevance: must be a finite number, got 'nan'"),
    (('evaluate', 'recs.csv', 'held.csv', '--catalogue', -2), "argument --catalogue: must be a whole number >= 1, got '-2'"),
    (('demo', '--bs', 0), "argument --bs: must be a whole number >= 1 and < 2,147,483,648, got '0'"),
    (('demo', '--lr', 'inf'), "argument --lr: must be a finite number > 0, got 'inf'"),
    (('demo', '--relevance=-inf'), "argument --relevance: must be a finite number, got '-inf'"),
    (('demo', '--threads', 'two'), "argument --threads: must be a whole number >= 1, got 'two'"),
])
def test_other_bad_numbers(tmp_path, argv, expected):
    assert_usage_error(run(*argv, cwd=tmp_path), expected)
    assert list(tmp_path.iterdir()) == []                                # no file, no demo folder


def test_recommend_cuda_device_missing(files):
    "--device cuda without a GPU (or a GPU index past the last one) is exit 2 with one line, before anything is written"
    import torch
    d, _, _ = files
    dev = f'cuda:{torch.cuda.device_count()}' if torch.cuda.is_available() else 'cuda'
    res = run('recommend', d / 'model.fcf', '--device', dev, '--out', d / 'gpu.csv')
    assert_usage_error(res, f"argument --device: '{dev}' asked for, but")
    assert not (d / 'gpu.csv').exists()


def test_fit_too_few_ratings(tmp_path):
    fit = lambda f, *extra: run('fit', f, '--user', 'u', '--item', 'i', '--rating', 'r', *extra, '--out', tmp_path / 'm.fcf')
    (tmp_path / 'one.csv').write_text('u,i,r\n1,a,4\n')
    assert_usage_error(fit(tmp_path / 'one.csv'), "one.csv' has 1 rating(s), too few for --bs 64 and --valid-pct 0.2",
                       'at least 79', 'lower --bs')
    (tmp_path / 'two.csv').write_text('u,i,r\n1,a,4\n2,b,3\n')
    assert_usage_error(fit(tmp_path / 'two.csv', '--bs', 1), "has 2 rating(s), too few for --bs 1 and --valid-pct 0.2", 'at least 5')
    (tmp_path / 'bad.csv').write_text('u,i,r\n1,a,4\n2,b,x\n')       # content errors still come first
    assert_usage_error(fit(tmp_path / 'bad.csv'), "non-numeric value 'x'")
    assert not (tmp_path / 'm.fcf').exists()
    rows = ''.join(f'{u},{item},{(u * n) % 5 + 1}\n' for u in range(5) for n, item in enumerate('abcd'))
    (tmp_path / 'twenty.csv').write_text('u,i,r\n' + rows)         # 16 to train on: fails at --bs 64, fits at --bs 8
    assert_usage_error(fit(tmp_path / 'twenty.csv'), 'has 20 rating(s)')
    res = fit(tmp_path / 'twenty.csv', '--bs', 8, '--epochs', 1)
    assert res.returncode == 0, res.stderr
    assert 'train loss nan' not in res.stdout and (tmp_path / 'm.fcf').exists()


def test_layers_need_nn(files):
    d, _, _ = files
    res = run('fit', d / 'train.csv', '--user', 'molecule', '--item', 'target', '--rating', 'pchembl', '--layers', '10,5', '--out', d / 'l.fcf')
    assert_usage_error(res, '--layers 10,5 sets the hidden sizes of --nn models')
    assert not (d / 'l.fcf').exists()


# ---- a run that recommends nothing says so

def test_recommend_nothing_exits_2(files):
    d, train, _ = files
    (d / 'no_items.txt').write_text('P_NOPE\nP_NADA\n')
    res = run('recommend', d / 'model.fcf', '--items', d / 'no_items.txt', '--unknown', 'drop', '--out', d / 'none.csv')
    assert_usage_error(res, "none of the 2 item IDs in --items", 'nothing to recommend')
    (d / 'no_users.txt').write_text('CHEMBL_NOPE\n')
    res = run('recommend', d / 'model.fcf', '--users', d / 'no_users.txt', '--unknown', 'drop', '--out', d / 'none.parquet')
    assert_usage_error(res, "none of the 1 user IDs in --users", 'nothing to recommend')
    two = train.molecule.unique()[:2]
    (d / 'two_users.txt').write_text('\n'.join(two) + '\n')
    pairs = pd.DataFrame([(u, i) for u in two for i in train.target.unique()], columns=['molecule', 'target'])
    pairs.to_csv(d / 'everything.csv', index=False)                 # every item excluded for both users
    res = run('recommend', d / 'model.fcf', '--users', d / 'two_users.txt', '--exclude', d / 'everything.csv', '--out', d / 'none.csv')
    assert_usage_error(res, 'nothing to recommend')
    assert not (d / 'none.csv').exists() and not (d / 'none.parquet').exists()
    assert not [p for p in d.iterdir() if p.name.startswith('.none')]     # no temporary file left behind


def test_recommend_reports_users_ranked(files):
    d, train, _ = files
    (d / 'mixed2.txt').write_text(f"{train.molecule.iloc[0]}\nCHEMBL_NOPE\nCHEMBL_NADA\n")
    res = run('recommend', d / 'model.fcf', '--users', d / 'mixed2.txt', '--unknown', 'drop', '--k', 3, '--out', d / 'm2.csv')
    assert res.returncode == 0, res.stderr
    assert 'wrote 3 recommendations (top-3) for 1 users' in res.stdout, res.stdout


# ---- IDs with leading zeros

@pytest.fixture(scope='module')
def zero_files(tmp_path_factory):
    "A model trained on user IDs such as '007' and item IDs such as '01' (strings that look like integers)"
    from fastcf.data import synthetic_ratings
    from fastcf.evaluate import split_by_user
    d = tmp_path_factory.mktemp('zeros')
    r = synthetic_ratings(n_users=120, n_items=30, density=0.4)
    r['user'] = r.user.map(lambda u: f'{u:03d}'); r['item'] = r.item.map(lambda i: f'{i:02d}')
    train, held = split_by_user(r, frac=0.2, seed=0)
    train.to_csv(d / 'train.csv', index=False); held.to_csv(d / 'held.csv', index=False)
    res = run('fit', d / 'train.csv', '--user', 'user', '--item', 'item', '--rating', 'rating', '--epochs', 1, '--out', d / 'model.fcf')
    assert res.returncode == 0, res.stderr
    return d, train, held


def test_leading_zero_ids(zero_files):
    d, train, held = zero_files
    assert '120 str IDs' in run('info', d / 'model.fcf').stdout
    users = [u for u in train.user.unique() if u.startswith('00')][:2] + ['100']     # '100' looks like a plain integer
    (d / 'users.txt').write_text('\n'.join(users) + '\n')
    res = run('recommend', d / 'model.fcf', '--users', d / 'users.txt', '--exclude', d / 'train.csv', '--k', 5, '--out', d / 'some.csv')
    assert res.returncode == 0, res.stderr
    some = pd.read_csv(d / 'some.csv', dtype=str)
    assert sorted(some.user.unique()) == sorted(users) and some.item.str.len().eq(2).all()
    assert some.merge(train, on=['user', 'item']).empty
    res = run('recommend', d / 'model.fcf', '--k', 10, '--exclude', d / 'train.csv', '--out', d / 'recs.csv')
    assert res.returncode == 0, res.stderr
    res = run('evaluate', d / 'recs.csv', d / 'held.csv', '--k', 10, '--json')
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)['n_users'] == held.user.nunique()


def test_evaluate_leading_zeros_without_model(tmp_path):
    "evaluate has no model: a CSV's '007' matches '007' in the other file, and a mismatch does not blame a model"
    pd.DataFrame({'user': ['007', '007', '8'], 'item': ['a', 'b', 'a'], 'score': [.9, .8, .7], 'rank': [1, 2, 1]}).to_csv(
        tmp_path / 'recs.csv', index=False)
    (tmp_path / 'held.csv').write_text('user,item,rating\n007,b,5\n8,c,4\n')
    res = run('evaluate', tmp_path / 'recs.csv', tmp_path / 'held.csv', '--k', 2, '--json')
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)
    assert (m['n_users'], m['hit_rate'], m['recall']) == (2, 0.5, 0.5)   # 007 gets b at rank 2; 8 never gets c
    (tmp_path / 'other.csv').write_text('user,item,rating\n7,a,5\n')
    res = run('evaluate', tmp_path / 'recs.csv', tmp_path / 'other.csv')
    assert_usage_error(res, "none of the 1 user IDs in the held-out file", 'same IDs')
    assert 'model' not in res.stderr


# ---- every --help shows one example that runs as written

def help_examples(*cmd) -> list:
    "The example lines of `fastcf CMD --help`, in order: each follows a line 'example (...):'"
    res = run(*cmd, '--help')
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    at = [n for n, l in enumerate(lines) if l.startswith('example (')]
    assert at and all(lines[n + 1].startswith('  fastcf ') for n in at), res.stdout
    assert at[-1] + 2 == len(lines), res.stdout                          # the examples end the help
    return [lines[n + 1].strip() for n in at]


def help_example(*cmd) -> str:
    "The one example line of `fastcf CMD --help`"
    lines = help_examples(*cmd)
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope='module')
def demo_folder(tmp_path_factory):
    "Run `fastcf --help`'s example, the small demo, once; the other examples run in the same folder"
    d = tmp_path_factory.mktemp('examples')
    line = help_example()
    assert line == 'fastcf demo --small', line
    res = run(*shlex.split(line)[1:], cwd=d)
    assert res.returncode == 0, res.stderr
    return d, res.stdout              # the folder holds only what the demo wrote


def _popularity(train, users, k=10):
    "The baseline, written here from its definition: each molecule's `k` most-measured targets it has not been measured on"
    order = train.target.value_counts().index.tolist()
    seen = train.groupby('molecule').target.agg(set).to_dict()
    rows = [(m, t, float(k - r), r + 1) for m in users for r, t in enumerate([t for t in order if t not in seen.get(m, ())][:k])]
    return pd.DataFrame(rows, columns=['molecule', 'target', 'score', 'rank'])


def test_demo_beats_popularity(demo_folder):
    "The small demo's model finds more of the held-out actives than the popularity baseline, and reports that truthfully"
    from fastcf.data import synthetic_ratings
    from fastcf.evaluate import split_by_user, ranking_metrics
    d, stdout = demo_folder
    recs = pd.read_parquet(d / 'fastcf-demo' / 'recs.parquet')
    assert recs.groupby('molecule').size().max() == 50 and recs.molecule.nunique() == 3000
    train, held = split_by_user(synthetic_ratings(preset='bio-small', seed=42), frac=0.2, seed=42, min_train=2)   # the demo's data
    assert recs.merge(train, on=['molecule', 'target']).empty                     # seen pairs excluded
    model = ranking_metrics(recs, held, k=10, relevance=7)
    popular = ranking_metrics(_popularity(train, recs.molecule.unique()), held, k=10, relevance=7)
    for name, margin in (('precision', 1.1), ('ndcg', 1.1), ('recall', 1.), ('hit_rate', 1.)):   # measured: 1.23, 1.16, 1.10, 1.06×
        assert model[name] > margin * popular[name], (name, model[name], popular[name])         # (--epochs 1 loses: ndcg 0.117 vs 0.136)
    printed = {l.split()[0]: l.split()[1:] for l in stdout.splitlines() if '@10' in l}
    for name in ('precision', 'ndcg', 'recall', 'hit_rate'):                     # the table it prints is these numbers
        assert [float(v) for v in printed[f'{name}@10']] == pytest.approx([model[name], popular[name]], abs=1e-4), name


def help_commands() -> list:
    "The commands `fastcf --help` lists, in its order"
    res = run('--help')
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    block = lines[lines.index('positional arguments:') + 2:]
    block = block[:block.index('')]                                      # up to the blank line before options:
    return [l.split()[0] for l in block if l.startswith('    ') and not l.startswith('     ')]   # wrapped help is indented more


def _out(argv) -> str:
    "The file an example writes with --out, if it has one"
    return argv[argv.index('--out') + 1] if '--out' in argv else None


def test_help_examples_run(demo_folder):
    "In the folder where `fastcf demo --small` ran (and nothing else), every --help example runs exactly as printed, in order"
    d, stdout = demo_folder
    assert sorted(p.name for p in d.iterdir()) == ['fastcf-demo']
    assert sorted(p.name for p in (d / 'fastcf-demo').iterdir()) == ['heldout.csv', 'model.fcf', 'recs.parquet', 'train.csv']
    commands = help_commands()
    assert commands == ['demo', 'fit', 'recommend', 'evaluate', 'info'], commands   # in this order: evaluate reads recommend's output
    outputs, first = {}, help_example()
    for cmd in commands:
        for n, line in enumerate(help_examples(cmd)):
            argv = shlex.split(line)
            assert argv[:2] == ['fastcf', cmd], argv
            if line == first: continue                                    # the same line as fastcf --help's: the fixture ran it
            out = _out(argv)
            if out: assert not (d / out).exists(), out                   # written by this example, not left from before
            res = run(*argv[1:], cwd=d)
            assert res.returncode == 0, (argv, res.stderr)
            if out: assert (d / out).stat().st_size > 0, out
            outputs[cmd, n] = res.stdout
    assert sorted(outputs) == [('demo', 1), ('evaluate', 0), ('evaluate', 1), ('fit', 0), ('fit', 1), ('info', 0), ('info', 1),
                               ('recommend', 0), ('recommend', 1)], sorted(outputs)
    assert 'saved model.fcf' in outputs['fit', 0] and 'valid RMSE' in outputs['fit', 0]
    train = pd.read_csv(d / 'fastcf-demo' / 'train.csv')
    assert train.columns.tolist() == ['molecule', 'target', 'pchembl']
    top10 = pd.read_csv(d / 'top10.csv')
    assert top10.groupby('molecule').size().eq(10).all() and top10.molecule.nunique() == 3000
    assert top10.merge(train, on=['molecule', 'target']).empty                 # recommend's example excludes the training pairs
    assert 'precision@10' in outputs['evaluate', 0] and 'kind      dot' in outputs['info', 0]
    printed = {l.split()[0]: float(l.split()[1]) for l in outputs['evaluate', 0].splitlines() if '@10' in l}
    demo = {l.split()[0]: float(l.split()[1]) for l in stdout.splitlines() if '@10' in l}
    for name in ('precision@10', 'ndcg@10', 'recall@10', 'hit_rate@10'):    # evaluate's example scores the demo's own model:
        assert printed[name] == pytest.approx(demo[name], abs=1e-4), name   # its numbers are the demo's model column
    # the hybrid examples: demo --hybrid --small, fit with feature files, recommend for never-measured molecules, evaluate, info
    hybrid = d / 'fastcf-demo-hybrid'
    assert sorted(p.name for p in hybrid.iterdir()) == ['heldout.csv', 'model.fcf', 'molecules.csv', 'new_molecules.csv',
                                                        'targets.csv', 'train.csv']
    assert 'saved hybrid.fcf' in outputs['fit', 1] and 'with 256 user features and 20 item features' in outputs['fit', 1]
    new = pd.read_csv(hybrid / 'new_molecules.csv')
    new_top10 = pd.read_csv(d / 'new_top10.csv')
    assert set(new_top10.molecule) == set(new.molecule) and new_top10.groupby('molecule').size().eq(10).all()
    assert not set(new.molecule) & set(pd.read_csv(hybrid / 'train.csv').molecule)   # never measured: not in training
    printed = {l.split()[0]: float(l.split()[1]) for l in outputs['evaluate', 1].splitlines() if '@10' in l}
    demo = {l.split()[0]: float(l.split()[1]) for l in outputs['demo', 1].splitlines() if '@10' in l}
    for name in ('precision@10', 'ndcg@10', 'recall@10', 'hit_rate@10'):    # the demo's table is evaluate's on the same files
        assert printed[name] == pytest.approx(demo[name], abs=1e-4), name
    assert 'features  user 256 (fingerprint=' in outputs['info', 1] and 'item 20 (family=' in outputs['info', 1]


# ---- packaging

def test_parquet_needs_the_extra(files, tmp_path):
    "Without pyarrow, --out recs.parquet names the extra to install and writes nothing; .csv needs nothing"
    d, _, _ = files
    (tmp_path / 'pyarrow').mkdir()
    (tmp_path / 'pyarrow' / '__init__.py').write_text("raise ImportError('pyarrow is hidden by this test')\n")
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')])}
    res = run('recommend', d / 'model.fcf', '--k', 2, '--out', tmp_path / 'recs.parquet', env=env)
    assert_usage_error(res, "pip install 'fastcf[parquet]'")
    assert not (tmp_path / 'recs.parquet').exists()
    res = run('recommend', d / 'model.fcf', '--k', 2, '--out', tmp_path / 'recs.csv', env=env)
    assert res.returncode == 0, res.stderr


def copy_source(dest:Path) -> Path:
    "The files git would commit (tracked or new, not ignored) copied to `dest`, so a build leaves the checkout untouched"
    root = Path(__file__).resolve().parents[1]
    names = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'], cwd=root,
                           capture_output=True, text=True, check=True).stdout.split('\0')
    for name in filter(None, names):
        if (root / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, dest / name)
    return dest


def test_wheel_contains_license(tmp_path):
    src = copy_source(tmp_path / 'src')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path / 'dist'), str(src)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / 'dist').glob('fastcf-*.whl'))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        licence = [n for n in names if n.endswith('.dist-info/licenses/LICENSE')]
        assert licence, names
        text = z.read(licence[0]).decode()
        meta = z.read(next(n for n in names if n.endswith('.dist-info/METADATA'))).decode()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text and 'TERMS AND CONDITIONS' in text
    assert 'License-Expression: Apache-2.0' in meta and 'License-File: LICENSE' in meta
    assert 'fastcf/cli.py' in names and 'fastcf/__main__.py' in names
