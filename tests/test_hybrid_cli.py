"""The `fastcf` command with side features, through its real entry point: `fit --user-features/--item-features
[--feature-sep]`, `recommend --new-user-features/--new-item-features`, `info` on a hybrid export, `demo --hybrid`,
and the bad feature files, each one line and exit code 2 with no file written."""
import re, shutil, subprocess, sys
import numpy as np, pandas as pd, pytest

pytestmark = pytest.mark.slow          # every test starts `fastcf` processes (torch's import each), several train: outside the quick tier

FASTCF = shutil.which('fastcf')


def run(*args, cwd=None):
    cmd = [FASTCF] if FASTCF else [sys.executable, '-m', 'fastcf']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=600)


def assert_usage_error(res, *expected):
    "Exit code 2, one line on stderr naming the problem, no traceback"
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and 'Traceback' not in res.stderr, res.stderr
    for e in expected: assert e in lines[0], lines[0]


# ---- a hybrid export built by hand (no training), scored against numpy

NAMES = ['genre=a', 'genre=b', 'age']


@pytest.fixture(scope='module')
def hand(tmp_path_factory):
    "A dot export with user features `NAMES` and random weights, saved; its fields for the reference"
    from fastcf.testing import random_export
    from fastcf.export import CollabExport
    d = tmp_path_factory.mktemp('hand')
    e = random_export(n_users=20, n_items=6, n_factors=4, ids='str', y_range=(0., 5.))
    rng = np.random.default_rng(0)
    feats = dict(names=NAMES, weight=rng.normal(size=(3, 4)).astype('f4'), bias=rng.normal(size=3).astype('f4'))
    exp = CollabExport('dot', e.user_name, e.item_name, e.users, e.items, e.user_factors, e.item_factors, e.user_bias,
                       e.item_bias, y_range=e.y_range, user_features=feats)
    exp.save(d / 'h.fcf')
    e.save(d / 'plain.fcf')
    i = random_export(n_users=5, n_items=3, n_factors=4, ids='int')
    CollabExport('dot', i.user_name, i.item_name, i.users, i.items, i.user_factors, i.item_factors, i.user_bias, i.item_bias,
                 y_range=i.y_range, user_features=feats).save(d / 'int_ids.fcf')
    return d, exp, feats


def _reference(exp, feats, x:np.ndarray) -> np.ndarray:
    "Scores [new users, items] from the users' feature rows `x` (columns in NAMES order), written here from the model's definition"
    items = exp.items.rows(exp.item_ids)
    logits = (x @ feats['weight']) @ exp.item_factors[items].T + (x @ feats['bias'])[:, None] + exp.item_bias[items][None, :]
    lo, hi = exp.y_range
    return lo + (hi - lo) / (1 + np.exp(-logits))


def test_recommend_new_user_features_scores(hand, tmp_path):
    "Every score in the file is the model's on the new users' features: labels one-hot, a number as its value, unseen labels ignored"
    d, exp, feats = hand
    (tmp_path / 'new.csv').write_text('user,genre,age\nn1,a|b,0.5\nn2,b|zzz,-1\nn3,,2\n')
    res = run('recommend', d / 'h.fcf', '--new-user-features', tmp_path / 'new.csv', '--feature-sep', '|', '--k', 6,
              '--out', tmp_path / 'r.csv')
    assert res.returncode == 0, res.stderr
    assert "['genre=zzz']" in res.stderr and 'ignored' in res.stderr          # the label the model never saw, named
    assert 'added 3 new users' in res.stdout
    recs = pd.read_csv(tmp_path / 'r.csv')
    assert sorted(recs.user.unique()) == ['n1', 'n2', 'n3'] and len(recs) == 18
    x = np.array([[1, 1, 0.5], [0, 1, -1], [0, 0, 2]])
    ref = pd.DataFrame(_reference(exp, feats, x), index=['n1', 'n2', 'n3'], columns=exp.item_ids)
    expected = [ref.loc[u, i] for u, i in zip(recs.user, recs.item)]
    np.testing.assert_allclose(recs.score.to_numpy(), expected, rtol=1e-5, atol=1e-5)
    for _, g in recs.groupby('user'): assert g.score.is_monotonic_decreasing and g['rank'].tolist() == list(range(1, 7))


def test_recommend_new_user_features_subset_and_by_item(hand, tmp_path):
    "--users picks some of the new users; with --by item the new users are the candidates ranked for each item"
    d, exp, _ = hand
    (tmp_path / 'new.csv').write_text('user,genre,age\nn1,a,1\nn2,b,0\nn3,a|b,3\n')
    (tmp_path / 'some.txt').write_text('n3\nn1\n')
    res = run('recommend', d / 'h.fcf', '--new-user-features', tmp_path / 'new.csv', '--feature-sep', '|', '--users',
              tmp_path / 'some.txt', '--k', 2, '--out', tmp_path / 'r.csv')
    assert res.returncode == 0, res.stderr
    assert sorted(pd.read_csv(tmp_path / 'r.csv').user.unique()) == ['n1', 'n3']
    res = run('recommend', d / 'h.fcf', '--new-user-features', tmp_path / 'new.csv', '--feature-sep', '|', '--by', 'item',
              '--k', 2, '--out', tmp_path / 'who.csv')
    assert res.returncode == 0, res.stderr
    who = pd.read_csv(tmp_path / 'who.csv')
    assert set(who.user) <= {'n1', 'n2', 'n3'} and who.item.nunique() == 6 and len(who) == 12


def test_recommend_feature_errors(hand, tmp_path):
    d, _, _ = hand
    rec = lambda *argv: run('recommend', *argv, '--out', tmp_path / 'bad.csv')
    w = lambda name, text: ((tmp_path / name).write_text(text), tmp_path / name)[1]
    good = w('new.csv', 'user,genre,age\nn1,a,1\n')
    assert_usage_error(rec(d / 'plain.fcf', '--new-user-features', good, '--feature-sep', '|'),
                       '--new-user-features: this model has no user features')
    assert_usage_error(rec(d / 'h.fcf', '--new-item-features', w('items.csv', 'item,genre\nnew,a\n'), '--feature-sep', '|'),
                       'this model has no item features')
    assert_usage_error(rec(d / 'h.fcf', '--new-user-features', good), "column 'genre' is not numeric (e.g. 'a' on data row 1)",
                       '--feature-sep')
    assert_usage_error(rec(d / 'h.fcf', '--new-user-features', w('known.csv', 'user,genre,age\nu3,a,1\n'), '--feature-sep', '|'),
                       'already in the export', "['u3']")
    assert_usage_error(rec(d / 'h.fcf', '--new-user-features', w('noage.csv', 'user,genre\nn1,a\n'), '--feature-sep', '|'),
                       "lacks the feature column(s) ['age']")
    assert_usage_error(rec(d / 'h.fcf', '--new-user-features', w('extra.csv', 'user,genre,age,height\nn1,a,1,2\n'), '--feature-sep', '|'),
                       "column(s) ['height'] the model was not trained on")
    assert_usage_error(rec(d / 'h.fcf', '--new-user-features', w('nan.csv', 'user,genre,age\nn1,a,\n'), '--feature-sep', '|'),
                       "column 'age' is empty on 1 row(s), e.g. data row 1")
    assert_usage_error(rec(d / 'h.fcf', '--new-user-features', w('inf.csv', 'user,genre,age\nn1,a,inf\n'), '--feature-sep', '|'),
                       "column 'age' has non-finite value 'inf' on data row 1")
    assert_usage_error(rec(d / 'h.fcf', '--new-user-features', w('dup.csv', 'user,genre,age\nn1,a,1\nn1,b,2\n'), '--feature-sep', '|'),
                       "column 'user' has ID 'n1' a second time")
    assert_usage_error(rec(d / 'h.fcf', '--new-user-features', w('na.csv', 'user,genre,age\n#na#,a,1\n'), '--feature-sep', '|'), "'#na#'")
    assert_usage_error(rec(d / 'int_ids.fcf', '--new-user-features', w('text_ids.csv', 'user,genre,age\nx1,a,1\n'), '--feature-sep', '|'),
                       f"--new-user-features file {str(tmp_path / 'text_ids.csv')!r}: 'user' has non-integer ID 'x1', but the model's user IDs are integers")
    assert_usage_error(rec(d / 'h.fcf', '--new-user-features', tmp_path / 'nope.csv'), 'does not exist')
    assert_usage_error(rec(d / 'h.fcf', '--new-user-features', good, '--new-users', good), 'give one')
    assert_usage_error(rec(d / 'h.fcf', '--feature-sep', '|'), '--feature-sep splits the text columns')
    assert not (tmp_path / 'bad.csv').exists()


def test_info_lists_features_without_torch(hand):
    d, _, _ = hand
    code = (f"import sys, fastcf.cli; fastcf.cli.main(['info', {str(d / 'h.fcf')!r}]); "
            "print([m for m in ('torch', 'fastai') if m in sys.modules])")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert 'features  user 3 (genre=a, genre=b, age)' in res.stdout and res.stdout.splitlines()[-1] == '[]', res.stdout


def test_fit_feature_errors_before_training(tmp_path):
    "Bad feature files and options stop before fastai is imported or a model written"
    (tmp_path / 'r.csv').write_text('molecule,target,pchembl\n' + ''.join(f'M{i},T{i % 7},{5 + i % 4}\n' for i in range(300)))
    w = lambda name, text: ((tmp_path / name).write_text(text), tmp_path / name)[1]
    fit = lambda *extra: run('fit', tmp_path / 'r.csv', '--user', 'molecule', '--item', 'target', '--rating', 'pchembl', *extra,
                             '--out', tmp_path / 'm.fcf')
    assert_usage_error(fit('--feature-sep', '|'), '--feature-sep is for hybrid models')
    assert_usage_error(fit('--identity-drop', '0.5'), '--identity-drop is for hybrid models')
    assert_usage_error(fit('--identity-drop', '1', '--user-features', tmp_path / 'r.csv'), 'argument --identity-drop: must be a finite number >= 0 and < 1')
    assert_usage_error(fit('--user-features', tmp_path / 'nope.csv'), "--user-features file", 'does not exist')
    assert_usage_error(fit('--item-features', w('text.csv', 'target,family\nT1,kinase\n')),
                       "--item-features file", "column 'family' is not numeric (e.g. 'kinase' on data row 1)")
    assert_usage_error(fit('--user-features', w('other.csv', 'molecule,w\nX1,1\nX2,0\n')),
                       "--user-features file", 'no user ID of the feature table is in the ratings')
    assert_usage_error(fit('--user-features', w('nan.csv', 'molecule,w\nM1,1\nM2,\n')), "column 'w' is empty on 1 row(s), e.g. data row 2")
    assert_usage_error(fit('--user-features', w('dup.csv', 'molecule,w\nM1,1\nM1,2\n')), "has ID 'M1' a second time")
    assert not (tmp_path / 'm.fcf').exists()


# ---- training through the entry point

@pytest.fixture(scope='module')
def planted(tmp_path_factory):
    "bio-small-shaped ratings of 400 molecules × 40 targets with planted fingerprints and families; 80 molecules never measured"
    from fastcf.data import synthetic_ratings, planted_features
    d = tmp_path_factory.mktemp('planted')
    ratings, truth = synthetic_ratings(preset='bio-small', n_users=400, n_items=40, density=0.3, seed=1, return_truth=True)
    fps, families = planted_features(truth, seed=1, n_bits=64, n_families=5)
    cold = truth['user_ids'][:80]
    dense = fps.sparse.to_dense().astype(bool)
    text = lambda ids: ['|'.join(dense.columns[dense.loc[i].to_numpy()]) for i in ids]
    ratings[~ratings.molecule.isin(cold)].to_csv(d / 'train.csv', index=False)
    ratings[ratings.molecule.isin(cold)].to_csv(d / 'held.csv', index=False)
    pd.DataFrame({'molecule': truth['user_ids'][80:], 'bits': text(truth['user_ids'][80:])}).to_csv(d / 'fp.csv', index=False)
    pd.DataFrame({'molecule': cold, 'bits': text(cold)}).to_csv(d / 'new_fp.csv', index=False)
    families.rename_axis('target').reset_index().to_csv(d / 'fam.csv', index=False)     # numeric one-hot columns family0..4
    return d, ratings, truth, fps, cold


def test_fit_hybrid_then_score_never_measured(planted):
    "fit with a '|' fingerprint file and a numeric family file; recommend scores the 80 new molecules better than target bias"
    d, ratings, truth, fps, cold = planted
    res = run('fit', d / 'train.csv', '--user', 'molecule', '--item', 'target', '--rating', 'pchembl', '--user-features', d / 'fp.csv',
              '--item-features', d / 'fam.csv', '--feature-sep', '|', '--identity-drop', '0.5', '--n-factors', 16, '--epochs', 8,
              '--lr', '1e-2', '--out', d / 'h.fcf')
    assert res.returncode == 0, res.stderr
    assert 'hybrid dot model' in res.stdout and 'with 64 user features and 5 item features' in res.stdout, res.stdout
    from fastcf.export import CollabExport
    exp = CollabExport.load(d / 'h.fcf')
    assert len(exp.user_ids) == 320 and sorted(exp.item_features.names) == [f'family{j}' for j in range(5)]
    res = run('recommend', d / 'h.fcf', '--new-user-features', d / 'new_fp.csv', '--feature-sep', '|', '--k', 40, '--out', d / 'r.csv')
    assert res.returncode == 0, res.stderr
    recs = pd.read_csv(d / 'r.csv')
    assert sorted(recs.molecule.unique()) == sorted(cold) and len(recs) == 80 * 40
    held = pd.read_csv(d / 'held.csv')
    scored = held.merge(recs, on=['molecule', 'target'])
    assert len(scored) == len(held)                                           # every target ranked for every new molecule
    train = pd.read_csv(d / 'train.csv')
    mean = train.pchembl.mean()
    base = mean + (train.pchembl - mean).groupby(train.target).mean().reindex(held.target).to_numpy()
    rmse = lambda p: float(np.sqrt(np.mean((p - held.pchembl.to_numpy()) ** 2)))
    assert rmse(scored.score.to_numpy()) < 0.85 * rmse(base), (rmse(scored.score.to_numpy()), rmse(base))


def test_fit_hybrid_implicit_and_info(planted):
    "--implicit with features: positives in, a hybrid export with both sides' features out; recommend ranks new molecules"
    d, ratings, truth, fps, cold = planted
    pos = pd.read_csv(d / 'train.csv').query('pchembl >= 7')[['molecule', 'target']]
    pos.to_csv(d / 'pos.csv', index=False)
    res = run('fit', d / 'pos.csv', '--user', 'molecule', '--item', 'target', '--implicit', '--user-features', d / 'fp.csv',
              '--item-features', d / 'fam.csv', '--feature-sep', '|', '--epochs', 2, '--out', d / 'hi.fcf')
    assert res.returncode == 0, res.stderr
    assert 'training a hybrid model on' in res.stdout and 'positives' in res.stdout
    res = run('info', d / 'hi.fcf')
    assert res.returncode == 0 and 'features  user 64 (bits=' in res.stdout and 'item 5 (family' in res.stdout, res.stdout
    res = run('recommend', d / 'hi.fcf', '--new-user-features', d / 'new_fp.csv', '--feature-sep', '|', '--k', 5, '--out', d / 'ri.csv')
    assert res.returncode == 0, res.stderr
    assert sorted(pd.read_csv(d / 'ri.csv').molecule.unique()) == sorted(cold)


def test_demo_hybrid_small(tmp_path):
    "demo --hybrid --small: the never-measured molecules' RMSE from fingerprints alone well under the target-bias baseline"
    res = run('demo', '--hybrid', '--small', '--out', tmp_path / 'h')
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / 'h').iterdir()) == ['heldout.csv', 'model.fcf', 'molecules.csv', 'new_molecules.csv',
                                                                 'targets.csv', 'train.csv']
    hybrid, base = map(float, re.search(r'RMSE: hybrid ([\d.]+), global mean \+ target bias ([\d.]+)', res.stdout).groups())
    assert hybrid < 0.7 * base, (hybrid, base)                                # measured: 0.436 vs 0.772
    for metric in ('precision@10', 'ndcg@10'):
        model, popularity = map(float, re.search(rf'{metric}\s+([\d.]+)\s+([\d.]+)', res.stdout).groups())
        assert model > popularity, (metric, model, popularity)
    assert "--new-user-features" in res.stdout and 'warning' not in res.stderr.lower(), res.stderr
