"""The `fastcf` command through its real entry points (the console script and `python -m fastcf`), good and bad input."""
import json, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest

FASTCF = shutil.which('fastcf')


def run(*args, cwd=None):
    cmd = [FASTCF] if FASTCF else [sys.executable, '-m', 'fastcf']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=600)


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
        if cmd: assert 'examples:' in res.stdout
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
    assert set(metrics) >= {'precision', 'recall', 'ndcg', 'map', 'hit_rate', 'coverage'} and 0 <= metrics['ndcg'] <= 1


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


def test_demo_small(tmp_path):
    res = run('demo', '--small', '--epochs', 1, '--out', tmp_path / 'demo')
    assert res.returncode == 0, res.stderr
    for text in ('held-out RMSE', 'precision@10', 'popularity', 'time per stage'): assert text in res.stdout
    assert (tmp_path / 'demo' / 'model.fcf').exists()
    recs = pd.read_parquet(tmp_path / 'demo' / 'recs.parquet')
    assert recs.groupby('molecule').size().max() == 50
