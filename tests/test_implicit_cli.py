"""`fastcf fit --implicit` and `fastcf demo --implicit` through the real entry point: positives in, an export out, ranked by
`fastcf recommend`, and better than popularity on held-out positives."""
import re, shutil, subprocess, sys
import pandas as pd, pytest

pytestmark = pytest.mark.slow          # starts fastcf processes that train

FASTCF = shutil.which('fastcf')


def run(*args, cwd=None):
    cmd = [FASTCF] if FASTCF else [sys.executable, '-m', 'fastcf']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=600)


def _popularity_hits(train, held, k=10):
    "Held-out positives found in each molecule's top-k most popular unseen targets, summed (written here, independently)"
    top = train['target'].value_counts().index.tolist()
    seen = train.groupby('molecule')['target'].apply(set)
    hits = 0
    for mol, targets in held.groupby('molecule')['target']:
        recs = [t for t in top if t not in seen.get(mol, set())][:k]
        hits += len(set(recs) & set(targets))
    return hits


def test_fit_implicit_recommend_beats_popularity(tmp_path):
    from fastcf.data import synthetic_ratings
    from fastcf.evaluate import split_by_user
    r = synthetic_ratings(preset='bio-small', seed=0)
    pos = r[r['pchembl'] >= 7][['molecule', 'target']]
    train, held = split_by_user(pos, 'molecule', 'target', frac=0.2, seed=0, min_train=2)
    train.to_csv(tmp_path / 'pos.csv', index=False)
    res = run('fit', tmp_path / 'pos.csv', '--user', 'molecule', '--item', 'target', '--implicit', '--out', tmp_path / 'm.fcf')
    assert res.returncode == 0, res.stderr
    assert 'positives' in res.stdout and (tmp_path / 'm.fcf').exists()
    res = run('recommend', tmp_path / 'm.fcf', '--k', 10, '--exclude', tmp_path / 'pos.csv', '--out', tmp_path / 'r.csv')
    assert res.returncode == 0, res.stderr
    recs = pd.read_csv(tmp_path / 'r.csv')
    assert not set(zip(recs.molecule, recs.target)) & set(zip(train.molecule, train.target))   # training positives excluded
    model_hits = len(set(zip(recs.molecule, recs.target)) & set(zip(held.molecule, held.target)))
    assert model_hits > 1.2 * _popularity_hits(train, held), (model_hits, _popularity_hits(train, held))


def test_fit_implicit_refuses_a_rating_column(tmp_path):
    (tmp_path / 'r.csv').write_text('u,i,r\n1,2,5\n')
    res = run('fit', tmp_path / 'r.csv', '--user', 'u', '--item', 'i', '--rating', 'r', '--implicit', '--out', tmp_path / 'm.fcf')
    assert res.returncode == 2 and 'drop --rating r' in res.stderr and 'Traceback' not in res.stderr, res.stderr
    assert not (tmp_path / 'm.fcf').exists()


def test_demo_implicit_beats_popularity(tmp_path):
    res = run('demo', '--implicit', '--small', '--out', tmp_path / 'demo')
    assert res.returncode == 0, res.stderr
    assert (tmp_path / 'demo' / 'model.fcf').exists() and (tmp_path / 'demo' / 'recs.csv').exists()
    # size, epochs and loss are announced before training, then one line per epoch
    lines = res.stdout.splitlines()
    announce = next(i for i, l in enumerate(lines) if l.startswith('training: 8 epochs') and 'bpr loss' in l)
    epochs = [i for i, l in enumerate(lines) if l.startswith('epoch ')]
    assert lines[0].startswith('implicit demo: generating the bio-small preset (3,000 molecules'), lines[0]
    assert len(epochs) == 8 and announce < epochs[0], lines
    for metric in ('ndcg@10', 'recall@10'):
        model, popularity = map(float, re.search(rf'{metric}\s+([\d.]+)\s+([\d.]+)', res.stdout).groups())
        assert model > popularity, (metric, model, popularity)
