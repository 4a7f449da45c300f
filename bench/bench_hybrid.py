"""Cold-start items on MovieLens-100k: fastcf's hybrid model vs LightFM (WARP, BPR) with the same side features, a
per-feature popularity prior, and random.

    python bench/bench_hybrid.py [--seeds 0 1 2] [--out bench/results/hybrid.csv] [--threads 1]
    python bench/bench_hybrid.py --tune 'loss=bpr' 'idrop=0' …   # each config on a validation split of the training items
    python bench/bench_hybrid.py --warm                           # a random split of the positives: hybrid vs plain
    python bench/bench_hybrid.py --explicit | --bio

LightFM is optional (`pip install lightfm`, built from source); without it its rows are skipped and the script says so.

Data: MovieLens-100k from the recbole 1.2.1 wheel (as in `tests/conftest.py`; cached in ~/.cache/fastcf-tests).
Positives are ratings >= 4. For each seed, 20% of the items that have a positive are held out whole (every interaction);
the models train on the positives of the other items. Item features: the 19 genres (multi-hot) plus the release decade
(one-hot); user features: age bucket, gender, occupation (one-hot). The same 0/1 feature matrices go to every method.
Evaluation: for each training user with a positive among the cold items, all cold items are ranked (none was seen in
training); NDCG@10 (binary gains), recall@10 (hits / the user's cold positives) and AUC (positives above non-positives,
ties half), averaged over those users; mean ± spread (max − min) over the seeds.
- fastcf hybrid: `HybridDataLoaders.from_df(..., implicit=True)`, `hybrid_learner` dot model, identity embeddings plus
  feature sums, `identity_drop` (DropoutNet) as listed, uniform negatives; cold items scored through
  `from_learner(learn).add_items(features)`.
- LightFM 1.17: identity + features for users and warm items (LightFM's standard hybrid), cold items by their features
  alone (their identity was never trained), and features only ('feat'); no_components and epochs as listed, 2 threads.
- popularity prior: a cold item's score is the mean, over its features, of the training positives per item having that feature.
- random: uniform scores.
With `--explicit`, instead: explicit ratings, cold items. The same 20% of items held out whole with all their ratings;
a hybrid dot model trained with MSE and y_range (0.5, 5.5) on the other ratings scores the held-out ratings from the
items' features alone (`add_items`); RMSE against the global mean plus the user's bias (what a model without features
can say about an item it never saw).
With `--warm`: the same positives split at random (20% of the pairs held out, per seed); every training user with a held-out
positive on a training item ranks every training item it has no training positive for; NDCG@10 and recall@10 of the
hybrid (identity + features) against the plain model (`implicit_learner`: identities only) with the same settings.
With `--tune`: the cold-items protocol inside the training items only (20% of them held out as validation-cold items, by
a seed of their own), for each configuration given; the cold test items are never scored.
Threads: torch and LightFM get the same `--threads` (default 1: on a shared, loaded machine more threads than free cores
make torch's OpenMP spin and run many times slower). `fit s` is the training call alone; `seconds` data to scores.
"""
import argparse, os, sys, time, warnings, zipfile, io
from pathlib import Path
warnings.filterwarnings('ignore')
import numpy as np, pandas as pd, torch, scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / 'tests'))
from fastai.torch_core import set_seed
from fastcf.hybrid import HybridDataLoaders, hybrid_learner
from fastcf.export import from_learner

K = 10
WHEEL = 'recbole/dataset_example/ml-100k/ml-100k.'
AGES = [0, 18, 25, 35, 45, 50, 56, 200]     # MovieLens-1M's age groups

def _wheel() -> Path:
    from conftest import CACHE, _recbole_wheel
    return _recbole_wheel(CACHE / 'ml-100k')

def load():
    "ratings, item features, user features (0/1 DataFrames indexed by ID)"
    with zipfile.ZipFile(_wheel()) as z: raw = {k: z.read(WHEEL + k).decode('latin-1') for k in ('inter', 'item', 'user')}
    read = lambda k: pd.read_csv(io.StringIO(raw[k]), sep='\t', dtype=str).rename(columns=lambda c: c.split(':')[0])
    inter, item, user = read('inter'), read('item'), read('user')
    ratings = pd.DataFrame({'user': inter.user_id.astype(int), 'movie': inter.item_id.astype(int), 'rating': inter.rating.astype(float)})
    genres = item['class'].fillna('').str.get_dummies(sep=' ').add_prefix('genre_')
    year = pd.to_numeric(item.release_year, errors='coerce')
    decade = pd.get_dummies((year // 10 * 10).astype('Int64').astype(str).where(year.notna()), prefix='decade')
    items = pd.concat([genres, decade], axis=1).astype(np.float32).set_index(item.item_id.astype(int).rename('movie'))
    age = pd.cut(user.age.astype(int), AGES, right=False, labels=[f'age_{a}' for a in AGES[:-1]])
    users = pd.concat([pd.get_dummies(age), pd.get_dummies(user.gender, prefix='gender'),
                       pd.get_dummies(user.occupation, prefix='occ')], axis=1).astype(np.float32)
    users.index = user.user_id.astype(int).rename('user')
    return ratings, items, users

def split(ratings, seed):
    "train positives, test positives (cold items only), the cold items"
    pos = ratings[ratings.rating >= 4][['user', 'movie']]
    items = np.sort(pos.movie.unique())
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(items, size=int(round(0.2 * len(items))), replace=False))
    is_cold = pos.movie.isin(cold)
    return pos[~is_cold].reset_index(drop=True), pos[is_cold].reset_index(drop=True), cold

def metrics(scores:np.ndarray, users:np.ndarray, cold:np.ndarray, test:pd.DataFrame, seen:np.ndarray=None) -> dict:
    "Mean NDCG@K, recall@K and AUC over `users` of `scores` [users, cold items]; `seen` [users, items]: left out of the ranking"
    col = pd.Index(cold).get_indexer(test.movie); row = pd.Index(users).get_indexer(test.user)
    truth = np.zeros(scores.shape, bool); truth[row, col] = True
    n_seen = np.zeros(len(users))
    if seen is not None:
        scores = np.where(seen, -np.inf, scores); n_seen = seen.sum(1)     # all seen share the lowest ranks
    top = np.argsort(-scores, axis=1, kind='stable')[:, :K]
    hits = np.take_along_axis(truth, top, 1)
    disc = 1 / np.log2(np.arange(2, K + 2))
    n_pos = truth.sum(1)
    ndcg = (hits * disc).sum(1) / np.array([disc[:min(n, K)].sum() for n in n_pos])
    recall = hits.sum(1) / n_pos
    from scipy.stats import rankdata
    ranks = rankdata(scores, axis=1)                       # average ranks: ties count half
    n_neg = scores.shape[1] - n_pos - n_seen
    auc = ((ranks * truth).sum(1) - n_pos * n_seen - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return dict(ndcg=ndcg.mean(), recall=recall.mean(), auc=auc.mean())

FIT = {}    # seconds of the last training call, by method (what `fit s` reports)

def fastcf_learner(train, item_feats, user_feats, seed, cfg, features=True):
    "A trained hybrid (or, `features=False`, plain `implicit_learner`) Learner on the positives `train`"
    set_seed(seed, reproducible=True)
    kw = dict(valid_pct=0, seed=seed, bs=cfg['bs'], n_neg=cfg['n_neg'], device='cpu')
    if features:
        dls = HybridDataLoaders.from_df(train, user_features=user_feats, item_features=item_feats, implicit=True, **kw)
        learn = hybrid_learner(dls, n_factors=cfg['n_factors'], loss=cfg['loss'], sparse=cfg['sparse'],
                               identity_drop={'user': cfg['udrop'], 'item': cfg['idrop']})
    else:
        from fastcf.implicit import implicit_learner, ImplicitDataLoaders
        dls = ImplicitDataLoaders.from_df(train, 'user', 'movie', **kw)
        learn = implicit_learner(dls, n_factors=cfg['n_factors'], loss=cfg['loss'], sparse=cfg['sparse'], metrics=[])
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(cfg['epochs'], cfg['lr'], wd=cfg['wd'])
    FIT['fastcf'] = time.perf_counter() - t
    return learn

def fastcf_scores(train, users_eval, cold, item_feats, user_feats, seed, cfg):
    learn = fastcf_learner(train, item_feats, user_feats, seed, cfg)
    exp = from_learner(learn).add_items(item_feats.loc[cold])
    u, i = exp.users.rows(users_eval), exp.items.rows(cold)
    return exp.user_factors[u] @ exp.item_factors[i].T + exp.user_bias[u][:, None] + exp.item_bias[i][None, :]

def lightfm_scores(train, users_eval, cold, item_feats, user_feats, seed, cfg):
    from lightfm import LightFM
    uid = pd.Index(user_feats.index); warm = np.setdiff1d(item_feats.index, cold)
    iid = pd.Index(np.concatenate([warm, cold]))
    n_u, n_w, n_if = len(uid), len(warm), item_feats.shape[1]
    U = sp.csr_matrix(user_feats.loc[uid].to_numpy())
    I = sp.csr_matrix(item_feats.loc[iid].to_numpy())
    if cfg['identity']:
        U = sp.hstack([sp.identity(n_u, format='csr'), U]).tocsr()
        ident = sp.vstack([sp.identity(n_w, format='csr'), sp.csr_matrix((len(cold), n_w))])   # cold items: no identity
        I = sp.hstack([ident, I]).tocsr()
    inter = sp.coo_matrix((np.ones(len(train), np.float32), (uid.get_indexer(train.user), iid.get_indexer(train.movie))),
                          shape=(n_u, len(iid)))
    model = LightFM(loss=cfg['loss'], no_components=cfg['n_factors'], learning_rate=cfg['lr'], item_alpha=cfg['alpha'],
                    user_alpha=cfg['alpha'], random_state=seed)
    t = time.perf_counter()
    model.fit(inter, user_features=U, item_features=I, epochs=cfg['epochs'], num_threads=THREADS)
    FIT['LightFM'] = time.perf_counter() - t
    u = np.repeat(uid.get_indexer(users_eval), len(cold)); i = np.tile(iid.get_indexer(cold), len(users_eval))
    return model.predict(u, i, user_features=U, item_features=I, num_threads=THREADS).reshape(len(users_eval), len(cold))

def prior_scores(train, users_eval, cold, item_feats, *_):
    counts = train.movie.value_counts().reindex(item_feats.index, fill_value=0).to_numpy(np.float64)
    F = item_feats.to_numpy(np.float64)
    per_feature = (F * counts[:, None]).sum(0) / np.maximum(F.sum(0), 1)   # positives per item having the feature
    Fc = item_feats.loc[cold].to_numpy(np.float64)
    s = (Fc * per_feature).sum(1) / np.maximum(Fc.sum(1), 1)
    return np.tile(s, (len(users_eval), 1))

def random_scores(train, users_eval, cold, item_feats, user_feats, seed, cfg):
    return np.random.default_rng(seed).random((len(users_eval), len(cold)))

THREADS = 1
FASTCF = dict(n_factors=64, loss='sampled_softmax', udrop=0., idrop=0.5, epochs=5, lr=3e-2, wd=0.1, bs=1024, n_neg=8, sparse=True)
# LightFM: the settings the validation-cold split of the training items chose (`--tune`, see the hybrid page), per loss
WARP = dict(loss='warp', n_factors=64, lr=0.05, alpha=1e-6, epochs=10)
BPR = dict(loss='bpr', n_factors=64, lr=0.05, alpha=1e-4, epochs=30)
METHODS = {
    'fastcf hybrid': (fastcf_scores, FASTCF),
    'fastcf hybrid, dense Adam': (fastcf_scores, {**FASTCF, 'sparse': False}),
    'LightFM WARP': (lightfm_scores, dict(identity=True, **WARP)),
    'LightFM WARP feat': (lightfm_scores, dict(identity=False, **WARP)),
    'LightFM BPR': (lightfm_scores, dict(identity=True, **BPR)),
    'LightFM BPR feat': (lightfm_scores, dict(identity=False, **BPR)),
    'popularity prior': (prior_scores, {}),
    'random': (random_scores, {}),
}

EXPLICIT = dict(n_factors=32, idrop=0.5, epochs=5, lr=5e-3, wd=0.1, bs=1024)

PATHS = {'fast': (True, True), 'tensor, dense Adam': (True, False), 'fastai (CollabDataLoaders, dense Adam)': (False, False)}

def explicit_rmse(ratings, item_feats, user_feats, seed, cfg=EXPLICIT, path='fast') -> dict:
    "RMSE of cold items' ratings: hybrid from features alone (trained on `path`, see `PATHS`) vs global mean + user bias"
    fast, sparse = PATHS[path]
    _, _, cold = split(ratings, seed)
    is_cold = ratings.movie.isin(cold)
    train, held = ratings[~is_cold].reset_index(drop=True), ratings[is_cold].reset_index(drop=True)
    held = held[held.user.isin(set(train.user))]
    mean = train.rating.mean(); ubias = (train.rating - mean).groupby(train.user).mean()
    base = np.sqrt(np.mean((mean + ubias.reindex(held.user).to_numpy() - held.rating.to_numpy()) ** 2))
    set_seed(seed, reproducible=True)
    t = time.perf_counter()
    dls = HybridDataLoaders.from_df(train, user_features=user_feats, item_features=item_feats, valid_pct=0.05, seed=seed,
                                    bs=cfg['bs'], device='cpu', fast=fast)
    learn = hybrid_learner(dls, n_factors=cfg['n_factors'], y_range=(0.5, 5.5), identity_drop={'user': 0., 'item': cfg['idrop']},
                           sparse=sparse)
    fit = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(cfg['epochs'], cfg['lr'], wd=cfg['wd'])
    fit = time.perf_counter() - fit
    exp = from_learner(learn).add_items(item_feats.loc[cold])
    pred = exp.score_rows(exp.users.rows(held.user), exp.items.rows(held.movie))
    return dict(seed=seed, path=path, baseline=base, hybrid=np.sqrt(np.mean((pred - held.rating.to_numpy()) ** 2)), seconds=time.perf_counter() - t,
                fit_seconds=fit)

def bio_features(truth, seed, n_bits=256, n_families=20):
    "`fastcf.data.planted_features`, its fingerprints as the (scipy CSR, IDs, names) triple this bench passes around"
    from fastcf.data import planted_features
    fps, families = planted_features(truth, seed, n_bits, n_families)
    return (sp.csr_matrix(fps.sparse.to_coo().astype(np.float32)), truth['user_ids'], list(fps.columns)), families

BIO = dict(n_factors=16, idrop=0.5, epochs=4, lr=5e-3, wd=0.05, bs=1024, sparse=True)

def bio_rmse(seed, cfg=BIO) -> dict:
    "Held-out molecules (20%, never measured): RMSE of half their ratings from fingerprints alone, vs target bias only and vs a warm model"
    from fastcf.data import synthetic_ratings
    ratings, truth = synthetic_ratings(preset='bio-small', seed=seed, return_truth=True)
    fps, families = bio_features(truth, seed)
    rng = np.random.default_rng(seed)
    mols = ratings.molecule.unique()
    cold = set(rng.choice(mols, size=len(mols) // 5, replace=False))
    is_cold = ratings.molecule.isin(cold).to_numpy()
    half = rng.random(len(ratings)) < 0.5
    train, revealed, test = ratings[~is_cold], ratings[is_cold & half], ratings[is_cold & ~half]
    test = test[test.molecule.isin(set(revealed.molecule))]          # molecules the warm model has seen
    mean = train.pchembl.mean(); tbias = (train.pchembl - mean).groupby(train.target).mean()
    rmse = lambda p: float(np.sqrt(np.mean((p - test.pchembl.to_numpy()) ** 2)))
    out = dict(seed=seed, target_bias=rmse(mean + tbias.reindex(test.target).fillna(0).to_numpy()))
    lo, hi = ratings.pchembl.min() - 0.5, ratings.pchembl.max() + 0.5
    for name, frame, feats in (('features alone', train, fps), ('warm (half their ratings seen)', pd.concat([train, revealed]), None)):
        set_seed(seed, reproducible=True)
        t = time.perf_counter()
        dls = HybridDataLoaders.from_df(frame, user_features=fps, item_features=families, valid_pct=0.02, seed=seed, bs=cfg['bs'],
                                        device='cpu', fast=cfg['sparse'])
        learn = hybrid_learner(dls, n_factors=cfg['n_factors'], y_range=(lo, hi), identity_drop={'user': cfg['idrop'], 'item': 0.},
                               sparse=cfg['sparse'])
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(cfg['epochs'], cfg['lr'], wd=cfg['wd'])
        exp = from_learner(learn)
        if name == 'features alone':
            pos = pd.Index(fps[1]).get_indexer(sorted(cold))
            exp = exp.add_users((fps[0][pos], fps[1][pos], fps[2]))
        out[name] = rmse(exp.score_rows(exp.users.rows(test.molecule), exp.items.rows(test.target)))
        print(f"  seed {seed} {name}: {out[name]:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
    return out

def inner_split(train:pd.DataFrame, seed:int):
    "The cold-items split inside the training positives: (inner train, validation positives, validation-cold items)"
    items = np.sort(train.movie.unique())
    held = np.sort(np.random.default_rng(seed + 1000).choice(items, size=int(round(0.2 * len(items))), replace=False))
    is_held = train.movie.isin(held)
    return train[~is_held].reset_index(drop=True), train[is_held].reset_index(drop=True), held

def tune(ratings, item_feats, user_feats, seeds, methods, configs) -> pd.DataFrame:
    "Each configuration (overrides of each method's settings) on the validation-cold items of each seed's training items"
    rows = []
    for seed in seeds:
        train, _, _ = split(ratings, seed)                      # the cold test items are dropped here and never seen
        inner, val, held = inner_split(train, seed)
        users_eval = np.sort(val.user[val.user.isin(set(inner.user))].unique())
        val = val[val.user.isin(users_eval)]
        for name in methods:
            fn, base = METHODS[name]
            for conf in configs:
                cfg = {**base, **parse_set(conf.replace(',', ' ').split(), base)}
                scores = fn(inner, users_eval, held, item_feats, user_feats, seed, cfg)
                rows.append(dict(method=name, config=conf, seed=seed, **metrics(scores, users_eval, held, val),
                                 fit_seconds=FIT.get('LightFM' if name.startswith('LightFM') else 'fastcf', np.nan)))
                print(f"seed {seed}  {name} [{conf}]  ndcg@10 {rows[-1]['ndcg']:.4f}  recall@10 {rows[-1]['recall']:.4f}  "
                      f"auc {rows[-1]['auc']:.4f}  fit {rows[-1]['fit_seconds']:.1f} s", flush=True)
    df = pd.DataFrame(rows)
    print(f"\n| method | config | NDCG@10 (validation-cold) | recall@10 | AUC | fit s |\n|---|---|---|---|---|---|")
    for (name, conf), d in df.groupby(['method', 'config'], sort=False):
        cell = lambda c: f"{d[c].mean():.4f} ± {d[c].max() - d[c].min():.4f}"
        print(f"| {name} | {conf} | {cell('ndcg')} | {cell('recall')} | {cell('auc')} | {d.fit_seconds.mean():.1f} |")
    return df

def warm(ratings, item_feats, user_feats, seeds, cfg) -> pd.DataFrame:
    "A random 80/20 split of the positives: hybrid vs plain model, ranking every training item a user has no training positive for"
    rows = []
    pos = ratings[ratings.rating >= 4][['user', 'movie']].reset_index(drop=True)
    for seed in seeds:
        is_test = np.random.default_rng(seed).random(len(pos)) < 0.2
        train, test = pos[~is_test].reset_index(drop=True), pos[is_test]
        items = np.sort(train.movie.unique())
        test = test[test.movie.isin(items) & test.user.isin(set(train.user))]
        users_eval = np.sort(test.user.unique())
        seen = np.zeros((len(users_eval), len(items)), bool)
        tr = train[train.user.isin(users_eval)]
        seen[pd.Index(users_eval).get_indexer(tr.user), pd.Index(items).get_indexer(tr.movie)] = True
        for name, features in (('fastcf hybrid', True), ('fastcf plain (identities only)', False)):
            learn = fastcf_learner(train, item_feats, user_feats, seed, cfg, features=features)
            exp = from_learner(learn)
            u, i = exp.users.rows(users_eval), exp.items.rows(items)
            scores = exp.user_factors[u] @ exp.item_factors[i].T + exp.user_bias[u][:, None] + exp.item_bias[i][None, :]
            rows.append(dict(method=name, seed=seed, **metrics(scores, users_eval, items, test, seen), fit_seconds=FIT['fastcf']))
            print(f"seed {seed}  {name:30} ndcg@10 {rows[-1]['ndcg']:.4f}  recall@10 {rows[-1]['recall']:.4f}  "
                  f"auc {rows[-1]['auc']:.4f}  fit {rows[-1]['fit_seconds']:.1f} s  ({len(users_eval)} users × {len(items)} items)", flush=True)
    df = pd.DataFrame(rows)
    print(f"\n| warm (random split of the positives) | NDCG@10 | recall@10 | AUC | fit s |\n|---|---|---|---|---|")
    for name, d in df.groupby('method', sort=False):
        cell = lambda c: f"{d[c].mean():.4f} ± {d[c].max() - d[c].min():.4f}"
        print(f"| {name} | {cell('ndcg')} | {cell('recall')} | {cell('auc')} | {d.fit_seconds.mean():.1f} |")
    diff = df[df.method == 'fastcf hybrid'].set_index('seed').ndcg - df[df.method != 'fastcf hybrid'].set_index('seed').ndcg
    print(f"\nhybrid − plain NDCG@10, paired by seed: {', '.join(f'{v:+.4f}' for v in diff)}")
    return df

def parse_set(pairs:list, cfg:dict) -> dict:
    "`['k=v', …]` as overrides of `cfg`, each value in the type of the setting it replaces"
    out = {}
    for kv in pairs:
        k, v = kv.split('=')
        if k not in cfg: raise SystemExit(f"unknown setting {k!r}; settings: {sorted(cfg)}")
        old = cfg[k]
        out[k] = v if isinstance(old, str) else (v.lower() in ('1', 'true', 'yes')) if isinstance(old, bool) else type(old)(v)
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--methods', nargs='+', default=list(METHODS))
    p.add_argument('--set', nargs='*', default=[], help="fastcf overrides (of BIO with --bio, EXPLICIT with --explicit), e.g. idrop=0 loss=bpr epochs=20")
    p.add_argument('--out', default=None)
    p.add_argument('--explicit', action='store_true', help="explicit ratings of cold items: RMSE (see above)")
    p.add_argument('--bio', action='store_true', help="planted bio preset: held-out molecules' RMSE (see bio_rmse)")
    p.add_argument('--summary', default=None, help="only print the tables of a CSV this script wrote")
    p.add_argument('--threads', type=int, default=1, help="torch and LightFM threads")
    p.add_argument('--warm', action='store_true', help="a random split of the positives: hybrid vs plain model (see above)")
    p.add_argument('--tune', nargs='+', default=None, help="configurations ('k=v,k=v') of --methods, on validation-cold training items")
    a = p.parse_args()
    if a.summary: return summary(pd.read_csv(a.summary))
    cfg = BIO if a.bio else EXPLICIT if a.explicit else FASTCF      # what --set changes
    cfg.update(parse_set(a.set, cfg))
    METHODS['fastcf hybrid, dense Adam'] = (fastcf_scores, {**FASTCF, 'sparse': False})     # the same settings, dense Adam
    global THREADS
    THREADS = a.threads
    torch.set_num_threads(a.threads)
    print(f"threads {a.threads}; load average {os.getloadavg()[0]:.1f} at the start")
    if a.warm or a.tune:
        ratings, item_feats, user_feats = load()
        if a.tune: df = tune(ratings, item_feats, user_feats, a.seeds, a.methods, a.tune)
        else:
            print(f"warm: fastcf {FASTCF}")
            df = warm(ratings, item_feats, user_feats, a.seeds, FASTCF)
        if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); df.to_csv(a.out, index=False)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        return
    if a.bio:
        print(f"bio-small preset, planted fingerprints and families; fastcf {BIO}")
        df = pd.DataFrame([bio_rmse(seed) for seed in a.seeds])
        print(f"\n| held-out molecules' RMSE | mean ± spread |\n|---|---|")
        for c in ('target_bias', 'features alone', 'warm (half their ratings seen)'):
            print(f"| {c} | {df[c].mean():.4f} ± {df[c].max() - df[c].min():.4f} |")
        if a.out: df.to_csv(a.out, index=False)
        return
    if a.explicit:
        ratings, item_feats, user_feats = load()
        rows = []
        for seed in a.seeds:
            for path in (PATHS if seed % 2 == 0 else list(PATHS)[::-1]):         # the training paths alternate
                rows.append(explicit_rmse(ratings, item_feats, user_feats, seed, path=path))
                print(f"seed {seed}  RMSE of cold items' ratings: global mean + user bias {rows[-1]['baseline']:.4f}, "
                      f"fastcf hybrid (features alone, {path}) {rows[-1]['hybrid']:.4f}  (fit {rows[-1]['fit_seconds']:.1f} s, "
                      f"all {rows[-1]['seconds']:.1f} s)", flush=True)
        df = pd.DataFrame(rows)
        print(f"\n| method | RMSE, cold items | fit s (median) |\n|---|---|---|")
        d = df[df.path == 'fast']
        print(f"| global mean + user bias | {d.baseline.mean():.4f} ± {d.baseline.max() - d.baseline.min():.4f} | |")
        for path, d in df.groupby('path', sort=False):
            print(f"| fastcf hybrid (features alone), {path} | {d.hybrid.mean():.4f} ± {d.hybrid.max() - d.hybrid.min():.4f} | {d.fit_seconds.median():.1f} |")
        if a.out: df.to_csv(a.out, index=False)
        return
    try: import lightfm  # noqa
    except ImportError:
        print("LightFM is not installed (pip install lightfm): its rows are skipped")
        a.methods = [m for m in a.methods if not m.startswith('LightFM')]
    ratings, item_feats, user_feats = load()
    print(f"MovieLens-100k: {len(ratings):,} ratings, {(ratings.rating >= 4).sum():,} positives; "
          f"item features {item_feats.shape[1]}, user features {user_feats.shape[1]}; fastcf {FASTCF}")
    rows = []
    for seed in a.seeds:
        train, test, cold = split(ratings, seed)
        users_eval = np.sort(test.user[test.user.isin(set(train.user))].unique())
        test = test[test.user.isin(users_eval)]
        for name in a.methods:
            fn, cfg = METHODS[name]
            t = time.perf_counter()
            scores = fn(train, users_eval, cold, item_feats, user_feats, seed, cfg)
            res = dict(method=name, seed=seed, **metrics(scores, users_eval, cold, test), seconds=time.perf_counter() - t,
                       fit_seconds=FIT.get('LightFM' if name.startswith('LightFM') else 'fastcf', 0.) if fn in (fastcf_scores, lightfm_scores) else 0.)
            rows.append(res)
            print(f"seed {seed}  {name:18} ndcg@10 {res['ndcg']:.4f}  recall@10 {res['recall']:.4f}  auc {res['auc']:.4f}  "
                  f"(fit {res['fit_seconds']:.1f} s, all {res['seconds']:.1f} s; {len(users_eval)} users × {len(cold)} cold items)", flush=True)
    df = pd.DataFrame(rows)
    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); df.to_csv(a.out, index=False)
    summary(df)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")

def summary(df:pd.DataFrame):
    "Mean ± spread (max − min over seeds) per method, and the per-seed difference between fastcf and LightFM's best"
    print(f"\n| method | NDCG@10 | recall@10 | AUC | fit s | seconds |\n|---|---|---|---|---|---|")
    for name, d in df.groupby('method', sort=False):
        cell = lambda c: f"{d[c].mean():.4f} ± {d[c].max() - d[c].min():.4f}"
        fit = f"{d.fit_seconds.mean():.1f}" if 'fit_seconds' in d and d.fit_seconds.mean() > 0 else ''
        print(f"| {name} | {cell('ndcg')} | {cell('recall')} | {cell('auc')} | {fit} | {d.seconds.mean():.1f} |")
    lfm = df[df.method.str.startswith('LightFM')]
    if len(lfm) and (df.method == 'fastcf hybrid').any():
        best = lfm.groupby('seed')[['ndcg', 'recall', 'auc']].max()        # LightFM's best variant on each seed, per metric
        diff = df[df.method == 'fastcf hybrid'].set_index('seed')[['ndcg', 'recall', 'auc']] - best
        means = lfm.groupby('method').ndcg.mean()
        top, ours = means.idxmax(), df[df.method == 'fastcf hybrid'].ndcg
        theirs = df[df.method == top].ndcg
        print(f"\nNDCG@10: fastcf hybrid {ours.mean():.4f} − LightFM's best ({top}) {theirs.mean():.4f} = {ours.mean() - theirs.mean():+.4f}; "
              f"spreads {ours.max() - ours.min():.4f} and {theirs.max() - theirs.min():.4f}")
        print("\nfastcf hybrid − LightFM's best variant, paired by seed (same split): " + ", ".join(
            f"{c} {diff[c].mean():+.4f} (per seed {', '.join(f'{v:+.4f}' for v in diff[c])})" for c in diff))

if __name__ == '__main__': main()
