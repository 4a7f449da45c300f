"""Real data: the issue-13 ranking modes on a dot model trained on MovieLens-100k, each against a reference written here
(dense float64 scores and masks, compared by `fastcf.testing.check_ranking_frame`, which lets items whose reference keys
tie within rounding trade places) — the reverse query, per-user candidates, ranking without the item bias,
explanations and reasons."""
import warnings
import numpy as np, pandas as pd, pytest, torch
from fastcf.testing import check_ranking_frame


@pytest.fixture(scope='module')
def trained(ml100k):
    "A dot model fitted on MovieLens-100k less 5 held-out ratings per user: (export, learner, its known train pairs, heldout)"
    warnings.filterwarnings('ignore')
    torch.set_num_threads(1)
    from fastai.torch_core import set_seed
    from fastcf.learner import collab_learner, CollabDataLoaders
    from fastcf.export import from_learner
    from fastcf.evaluate import split_by_user
    train, heldout = split_by_user(ml100k[['user', 'movie', 'rating']], n=5, seed=0)
    set_seed(0, reproducible=True)
    dls = CollabDataLoaders.from_df(train, user_name='user', item_name='movie', rating_name='rating', bs=256, seed=0)
    learn = collab_learner(dls, n_factors=32, y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 5e-3, wd=0.1)
    exp = from_learner(learn)
    known = train[train.user.isin(exp.user_ids) & train.movie.isin(exp.item_ids)]   # fastai's vocab: its training split only
    return exp, learn, known, heldout


def _dense(exp):
    "Every logit and score of the real users × real items, in float64: [users, items]"
    uf, vf = exp.user_factors[1:].astype(np.float64), exp.item_factors[1:].astype(np.float64)
    logits = uf @ vf.T + exp.user_bias[1:, None] + exp.item_bias[None, 1:]
    lo, hi = exp.y_range
    return logits, 1 / (1 + np.exp(-logits)) * (hi - lo) + lo


def test_recommend_users_is_the_transposed_brute_force(trained):
    from fastcf.rules import recommend_users
    exp, _, train, _ = trained
    movies = exp.item_ids[::40]
    got = recommend_users(exp, items=movies, k=20, exclude=train)
    logits, scores = _dense(exp)
    logits[exp.users.rows(train.user) - 1, exp.items.rows(train.movie) - 1] = -np.inf
    cols = exp.items.rows(movies) - 1
    keys = pd.DataFrame(logits[:, cols].T, movies, exp.user_ids)                       # [movies, users]
    check_ranking_frame(got, keys, 20, ref_scores=pd.DataFrame(scores[:, cols].T, movies, exp.user_ids))


def test_candidates_on_real_data_match_the_masked_brute_force(trained):
    from fastcf.predict import recommend
    exp, _, train, _ = trained
    rng = np.random.default_rng(0)
    users = exp.user_ids[:200]
    allowed = pd.DataFrame({'user': np.repeat(users, 50), 'movie': np.concatenate(
        [rng.choice(exp.item_ids, 50, replace=False) for _ in users])})
    got = recommend(exp, users=users, k=10, candidates=allowed, exclude=train)
    logits, scores = _dense(exp)
    ok = np.zeros(logits.shape, bool)
    ok[exp.users.rows(allowed.user) - 1, exp.items.rows(allowed.movie) - 1] = True
    ok[exp.users.rows(train.user) - 1, exp.items.rows(train.movie) - 1] = False
    rows = exp.users.rows(users) - 1
    keys = pd.DataFrame(np.where(ok, logits, -np.inf)[rows], users, exp.item_ids)
    check_ranking_frame(got, keys, 10, ref_scores=pd.DataFrame(scores[rows], users, exp.item_ids))


def test_ranking_without_item_bias_widens_coverage(trained):
    "The popularity the item bias carries: without it, the top 10 lists cover much more of the catalogue"
    from fastcf.predict import recommend
    from fastcf.evaluate import coverage, ndcg_at_k
    exp, _, train, heldout = trained
    with_bias = recommend(exp, k=10, exclude=train)
    without = recommend(exp, k=10, exclude=train, item_bias=False)
    cov = coverage(with_bias, train.movie), coverage(without, train.movie)
    ndcg = ndcg_at_k(with_bias, heldout), ndcg_at_k(without, heldout)
    print(f"coverage@10 {cov[0]:.3f} -> {cov[1]:.3f}; NDCG@10 {ndcg[0]:.4f} -> {ndcg[1]:.4f}")
    assert cov[1] > 1.5 * cov[0]
    # the scores stay the full model's: the same pair scores the same with and without the option
    pairs = without.merge(with_bias, on=['user', 'movie'], suffixes=('_without', '_with'))
    assert len(pairs) > 0
    np.testing.assert_allclose(pairs.score_without, pairs.score_with, atol=1e-5)


def test_explain_sums_to_the_trained_models_logit(trained):
    from fastcf.explain import explain
    exp, learn, _, _ = trained
    model = learn.model.eval()
    rng = np.random.default_rng(1)
    for user, movie in zip(rng.choice(exp.user_ids, 20), rng.choice(exp.item_ids, 20)):
        u, i = exp.users.rows([user])[0], exp.items.rows([movie])[0]
        with torch.no_grad():
            logit = ((model.u_weight.weight[u] * model.i_weight.weight[i]).sum() + model.u_bias.weight[u, 0]
                     + model.i_bias.weight[i, 0]).item()
            score = model(torch.tensor([[u, i]])).item()
        expl = explain(exp, user, movie)
        assert abs(expl.contribution.sum() - logit) < 1e-5
        assert abs(expl.attrs['score'] - score) < 1e-5


def test_because_vectorised_and_one_by_one_match_the_cosines(trained):
    from fastcf.predict import recommend
    from fastcf.explain import because
    exp, _, train, _ = trained
    recs = recommend(exp, users=exp.user_ids[:30], k=5, exclude=train)
    vec = because(exp, recs, train, k=3)
    f = exp.factors('item').astype(np.float64)
    unit = f.div(np.linalg.norm(f.values, axis=1), axis=0)
    for row in vec.iloc[::11].itertuples():
        rated = [m for m in train[train.user == row.user].movie.unique() if m != row.movie]
        cos = pd.DataFrame([unit.loc[rated].values @ unit.loc[row.movie].values], index=[row.movie], columns=rated)
        one = because(exp, row.user, row.movie, train, k=3)
        for ids, sims in ((one.movie.tolist(), one.similarity.tolist()), (row.because, row.because_similarity)):
            got = pd.DataFrame({'movie': row.movie, 'because': ids, 'similarity': sims, 'rank': np.arange(1, len(ids) + 1)})
            check_ranking_frame(got, cos, 3, score='similarity', eps=1e-6)


@pytest.mark.slow
def test_bench_rules_names_the_machine_the_path_and_both_timings(tmp_path):
    "bench/bench_rules.py at a tiny shape: every benchmark runs, says which candidates path ran, and names the machine"
    import os, re, subprocess, sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / 'bench' / 'bench_rules.py'), '--users', '300', '--items', '2000', '--per-user', '5',
           '--molecules', '400', '--targets', '30', '--k-users', '10', '--sweep-users', '100', '--sweep-items', '400',
           '--threads', '1', '--repeat', '1']
    env = {**os.environ, 'PYTHONPATH': str(root) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith('machine: ') and f"{os.cpu_count()} cores" in lines[0]
    assert re.search(r"candidates: 300 users x 2,000 items, 5 allowed each \(0\.25% of the keys: pairs path\)", out.stdout)
    assert re.search(r"reverse query: 30 targets x 400 molecules, top 10: recommend [\d.]+ s, recommend_users [\d.]+ s", out.stdout)
    sweep = [l for l in lines if 'allowed (' in l]
    assert [re.search(r"(\w+) path", l).group(1) for l in sweep] == ['pairs'] * 3 + ['mask'] * 3   # 1, 2, 4% | 6, 10, 20%
    assert all('row-space matrix' in l for l in sweep)
