"""Fold-in measured on MovieLens-100k: new users folded into a trained model against a retrained model and two baselines.

    python bench/foldin_movielens.py                      # the results table (about 4 trainings)
    python bench/foldin_movielens.py --tune               # also the wd / prior study on validation users (1 more training)
    python bench/foldin_movielens.py --nn                 # also the neural model (1 more training)
    python bench/foldin_movielens.py --timing             # only the 10,000-new-users timing at the bio shape
    --cache DIR keeps the trained models, so that a rerun skips training.

10% of the users (seeded) are held out entirely. A dot model is trained on the rest with the fastbook recipe
(collab_learner, 50 factors, y_range=(0, 5.5), fit_one_cycle(5, 5e-3, wd=0.1); 10% of the training users' ratings form
fastai's validation set). Each held-out user's ratings that the model's items cover are shuffled (seeded); the first n
(n = 5, 10, 20) are folded in and every method is scored on the same ratings: those after the first 20.

The data is MovieLens-100k's u.data (the test fixture in tests/conftest.py fetches it into ~/.cache/fastcf-tests/ml-100k);
it is never committed.
"""
import argparse, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch

warnings.filterwarnings('ignore', category=UserWarning); warnings.filterwarnings('ignore', category=FutureWarning)
NS = (5, 10, 20)


def split(df, frac, seed):
    "Users in a seeded random `frac` of the users, and the rest"
    users = np.sort(df.user.unique())
    held = np.random.default_rng(seed).choice(users, size=round(frac * len(users)), replace=False)
    mask = df.user.isin(held)
    return df[~mask].reset_index(drop=True), df[mask].reset_index(drop=True)


CACHE = None   # folder for trained exports (--cache), so that a rerun skips training


def train(train_df, valid_df, name, seed=42, use_nn=False):
    "The fastbook recipe on explicit train/valid frames (fastai's validation set never trains); cached under `name`"
    from fastcf.export import CollabExport
    if CACHE is not None and (CACHE / f"{name}.fcf").exists():
        print(f"  {name}: cached model", file=sys.stderr)
        return CollabExport.load(CACHE / f"{name}.fcf")
    from fastai.collab import TabularCollab
    from fastai.tabular.core import Categorify
    from fastai.data.block import TransformBlock
    from fastai.torch_core import set_seed
    from fastcf.learner import collab_learner
    from fastcf.export import from_learner
    frame = pd.concat([train_df, valid_df], ignore_index=True)
    splits = [list(range(len(train_df))), list(range(len(train_df), len(frame)))]
    set_seed(seed, reproducible=True)
    to = TabularCollab(frame, [Categorify], ['user', 'movie'], y_names=['rating'], y_block=TransformBlock(), splits=splits)
    dls = to.dataloaders(bs=64, seed=seed)
    kw = dict(use_nn=True, layers=[100, 50]) if use_nn else dict(n_factors=50)
    learn = collab_learner(dls, y_range=(0, 5.5), **kw)
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(5, 5e-3, wd=0.1)
    print(f"  {name}: trained on {len(train_df):,} ratings in {time.perf_counter() - start:.0f} s, "
          f"valid MSE {learn.recorder.values[-1][1]:.4f}", file=sys.stderr)
    exp = from_learner(learn)
    if CACHE is not None: exp.save(CACHE / f"{name}.fcf")
    return exp


def ordered(exp, users_df, seed):
    "The users' ratings of items the model knows, shuffled (seeded), with each rating's position within its user"
    df = users_df[users_df.movie.isin(exp.item_ids)].sample(frac=1, random_state=seed)
    return df.assign(pos=df.groupby('user').cumcount())


def rmse(a, b): return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def item_bias_only(exp, test):
    "sigmoid_range(b̄ + b_i): user factors zero, user bias the average trained user bias"
    from fastcf.foldin import row_prior
    from fastcf.models import sigmoid_range
    b = row_prior(exp).mean[-1] + exp.item_bias[exp.items.rows(test.movie)].astype(np.float64)
    return sigmoid_range(torch.from_numpy(b), *exp.y_range).numpy()


def foldin_rmse(exp, df, n, **kw):
    from fastcf.foldin import fold_in
    from fastcf.predict import predict
    test = df[df.pos >= 20]
    folded = fold_in(exp, df[df.pos < n][['user', 'movie', 'rating']], **kw)
    return rmse(predict(folded, test), test.rating), folded.folded.attrs['wd']


def results(data, seed):
    from fastcf.data import movielens_100k
    from fastcf.foldin import fold_in
    from fastcf.predict import predict
    df = movielens_100k(data)[['user', 'movie', 'rating']]
    known, held = split(df, 0.1, seed)
    valid = np.random.default_rng(seed + 1).random(len(known)) < 0.1
    print(f"{held.user.nunique()} held-out users; training the base model", file=sys.stderr)
    base = train(known[~valid], known[valid], f'base-seed{seed}')
    held = ordered(base, held, seed)
    test = held[held.pos >= 20]
    average = predict(fold_in(base, ids=held.user.unique()), test)
    rows = {'fold-in (default wd)': {}, 'retrained with the n ratings': {}, 'average user': {}, 'item bias only': {}}
    wds, timing = {}, {}
    for n in NS:
        start = time.perf_counter()
        rows['fold-in (default wd)'][n], wds[n] = foldin_rmse(base, held, n)
        timing[n] = time.perf_counter() - start
        rows['average user'][n] = rmse(average, test.rating)
        rows['item bias only'][n] = rmse(item_bias_only(base, test), test.rating)
        print(f"n={n}: retraining with the held-out users' first {n} ratings", file=sys.stderr)
        retrained = train(pd.concat([known[~valid], held[held.pos < n][['user', 'movie', 'rating']]], ignore_index=True), known[valid],
                          f'retrained-n{n}-seed{seed}')
        rows['retrained with the n ratings'][n] = rmse(predict(retrained, test), test.rating)
    table = pd.DataFrame(rows).T[list(NS)]
    ratio = table.loc['fold-in (default wd)'] / table.loc['retrained with the n ratings']
    lines = [f"RMSE on {len(test):,} ratings of {test.user.nunique()} held-out users (each user's ratings after the first 20).", "",
             "| method | n = 5 | n = 10 | n = 20 |", "|---|---|---|---|"]
    lines += [f"| {name} | " + " | ".join(f"{table.loc[name, n]:.4f}" for n in NS) + " |" for name in table.index]
    lines += ["| fold-in / retrained | " + " | ".join(f"{ratio[n]:.3f}" for n in NS) + " |",
              "| default wd (estimated) | " + " | ".join(f"{wds[n]:.1f}" for n in NS) + " |",
              "| fold-in time, all users (s) | " + " | ".join(f"{timing[n]:.2f}" for n in NS) + " |"]
    return "\n".join(lines)


def neural(data, seed):
    "Fold-in through the neural model's MLP (layers [100, 50]) against its average user, same split and ratings"
    from fastcf.data import movielens_100k
    from fastcf.foldin import fold_in
    from fastcf.predict import predict
    df = movielens_100k(data)[['user', 'movie', 'rating']]
    known, held = split(df, 0.1, seed)
    valid = np.random.default_rng(seed + 1).random(len(known)) < 0.1
    model = train(known[~valid], known[valid], f'nn-seed{seed}', use_nn=True)
    held = ordered(model, held, seed)
    test = held[held.pos >= 20]
    average = rmse(predict(fold_in(model, ids=held.user.unique()), test), test.rating)
    cells, converged = {}, {}
    for n in NS:
        folded = fold_in(model, held[held.pos < n][['user', 'movie', 'rating']])
        cells[n], converged[n] = rmse(predict(folded, test), test.rating), folded.folded.converged.mean()
    return "\n".join([f"Neural model (EmbeddingNN, layers [100, 50]), same held-out users and ratings:", "",
                      "| method | n = 5 | n = 10 | n = 20 |", "|---|---|---|---|",
                      "| fold-in (default wd) | " + " | ".join(f"{cells[n]:.4f}" for n in NS) + " |",
                      "| average user | " + " | ".join(f"{average:.4f}" for n in NS) + " |",
                      "| rows converged in max_iter | " + " | ".join(f"{converged[n]:.0%}" for n in NS) + " |"])


def tune(data, seed):
    "wd grid and prior variations on validation users: training users held out of a second model, never the test users"
    from fastcf.data import movielens_100k
    import fastcf.foldin as fi
    from fastcf.solve import RowPrior
    df = movielens_100k(data)[['user', 'movie', 'rating']]
    known, _ = split(df, 0.1, seed)                       # the test users are dropped here and never looked at
    rest, val_users = split(known, 0.1, seed + 100)
    valid = np.random.default_rng(seed + 1).random(len(rest)) < 0.1
    print(f"{val_users.user.nunique()} validation users; training the validation model", file=sys.stderr)
    model = train(rest[~valid], rest[valid], f'validation-seed{seed}')
    val = ordered(model, val_users, seed)
    out = {}
    for wd in (3., 10., 20., 30., 50., 100.): out[f"wd = {wd:g}"] = {n: foldin_rmse(model, val, n, wd=wd)[0] for n in NS}
    out['default wd (estimated)'] = {n: foldin_rmse(model, val, n)[0] for n in NS}
    default_wd = {n: foldin_rmse(model, val, n)[1] for n in NS}
    original = fi.row_prior
    def variant(change):
        def prior(exp, kind='user'):
            p = original(exp, kind)
            cov = p.chol @ p.chol.T * p.var
            mean = p.mean.copy()
            if change == 'zero mean': cov = cov + np.outer(mean, mean); mean[:] = 0   # E[θθᵀ]: the mean square
            if change == 'isotropic': cov = np.eye(len(mean)) * p.var                # one variance for all
            if change == 'free bias':           # a (nearly) flat prior on the bias
                cov[-1, :] = cov[:, -1] = 0; cov[-1, -1] = 1e6 * p.var
            var = float(np.diag(cov)[:-1].mean()) if change == 'free bias' else p.var
            return RowPrior(mean, np.linalg.cholesky(cov / var), var, p.n_rows)
        return prior
    for change in ('zero mean', 'isotropic', 'free bias'):
        fi.row_prior = variant(change)
        try: out[f"prior: {change}, default wd"] = {n: foldin_rmse(model, val, n)[0] for n in NS}
        finally: fi.row_prior = original
    table = pd.DataFrame(out).T[list(NS)]
    lines = [f"RMSE of fold-in on {val[val.pos >= 20].shape[0]:,} ratings of {val.user.nunique()} validation users "
             f"(default wd estimated: " + ", ".join(f"{default_wd[n]:.1f} at n = {n}" for n in NS) + ").", "",
             "| fold-in variant | n = 5 | n = 10 | n = 20 |", "|---|---|---|---|"]
    lines += [f"| {name} | " + " | ".join(f"{table.loc[name, n]:.4f}" for n in NS) + " |" for name in table.index]
    return "\n".join(lines)


def timing():
    "10,000 new users with 5–15 ratings each folded into a random export at the bio shape (45,854 × 488, 50 factors)"
    from fastcf.export import CollabExport
    from fastcf.models import Vocab
    from fastcf.foldin import fold_in
    r = np.random.default_rng(0)
    pad = lambda a: np.concatenate([np.zeros((1,) + a.shape[1:], np.float32), a.astype(np.float32)])
    n_users, n_items, f = 45_854, 488, 50
    exp = CollabExport('dot', 'molecule', 'target', Vocab([f"CHEMBL{i}" for i in range(n_users)], 1, 'molecule'),
                       Vocab([f"P{i:05d}" for i in range(n_items)], 1, 'target'),
                       pad(r.normal(0, 0.15, (n_users, f))), pad(r.normal(0, 0.15, (n_items, f))),
                       pad(r.normal(0, 0.3, n_users)), pad(r.normal(0.5, 0.5, n_items)), y_range=(3.5, 10.5))
    per = r.integers(5, 16, 10_000)
    new = pd.DataFrame({'molecule': np.repeat([f"NEW{i}" for i in range(10_000)], per),
                        'target': np.concatenate([r.choice(exp.item_ids, k, replace=False) for k in per]),
                        'pchembl': r.uniform(4, 10, per.sum())})
    out = []
    for wd in (None, 30.):
        start = time.perf_counter()
        folded = fold_in(exp, new, wd=wd)
        out.append(f"10,000 new users ({len(new):,} ratings) at the bio shape, wd={'default (estimated)' if wd is None else wd}: "
                   f"{time.perf_counter() - start:.1f} s (the solver runs on one torch thread); "
                   f"{folded.folded.converged.mean():.0%} converged")
    return "\n".join(out)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=str(Path.home() / '.cache' / 'fastcf-tests' / 'ml-100k'), help="folder with u.data")
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=torch.get_num_threads(), help='torch threads for training')
    ap.add_argument('--tune', action='store_true', help='also the wd / prior study on validation users')
    ap.add_argument('--nn', action='store_true', help='also fold-in through the neural model (1 more training)')
    ap.add_argument('--timing', action='store_true', help='only the 10,000-users timing')
    ap.add_argument('--cache', default=None, help='folder to keep trained models in, so that a rerun skips training')
    args = ap.parse_args()
    if args.cache: CACHE = Path(args.cache); CACHE.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    if args.timing: print(timing()); sys.exit()
    print(results(args.data, args.seed))
    if args.tune: print("\n" + tune(args.data, args.seed))
    if args.nn: print("\n" + neural(args.data, args.seed))
    print("\n" + timing())
