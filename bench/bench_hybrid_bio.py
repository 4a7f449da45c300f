"""Features and a few ratings: fold-in with the fingerprint's embedding as the prior mean, on the planted bio preset.

    python bench/bench_hybrid_bio.py [--seeds 0 1 2] [--out bench/results/hybrid_bio.csv] [--set epochs=4] [--cache DIR]

Data and model: `bench/bench_hybrid.py`'s bio setup, imported from it (`bio_features`, `BIO`): the `bio-small` preset of
`synthetic_ratings` (3,000 molecules x 200 targets) with planted 256-bit sparse fingerprints and 20 target families; a
hybrid dot model (`hybrid_learner`, 16 factors, molecule `identity_drop` 0.5, 4 epochs of `fit_one_cycle` at 5e-3,
wd 0.05, y_range the data's range +- 0.5, so fold-in runs its Levenberg-Marquardt path).
For each seed, 20% of the molecules are held out whole; the model trains on the others' values. Each held-out molecule's
values are put in a seeded random order: the first 10 are the ones that may be revealed, the rest are scored. Only
held-out molecules with at least 12 values are scored (at least 2 test values each), and every method is scored on
the same test values:
- target bias only: the training values' mean plus the target's mean offset (what a model without features says);
- ratings alone: `fold_in(exp, first_k)`, the ordinary prior (average trained molecule), k = 0 is the average molecule;
- features + ratings: `fold_in(exp, first_k, features=fingerprints)`, the fingerprint's embedding as the prior mean;
  k = 0 is the fingerprints alone (checked equal to `add_users`);
- warm: the same recipe retrained with the first 10 values of every held-out molecule added to the training data.
`wd` is fold-in's default (estimated from the folded-in values). Mean +- spread (max - min) over the seeds.
"""
import argparse, sys, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
import numpy as np, pandas as pd, torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / 'bench'))
from bench_hybrid import bio_features, BIO                     # the planted fingerprints and families, and the recipe
from fastai.torch_core import set_seed
from fastcf.data import synthetic_ratings
from fastcf.hybrid import HybridDataLoaders, hybrid_learner
from fastcf.export import from_learner
from fastcf.foldin import fold_in

KS = (1, 3, 10)
POOL, MIN_VALUES = 10, 12

CACHE = None                                                   # --cache: a folder keeping the trained exports for a rerun

def train(frame, fps, families, seed, cfg, y_range, name):
    "The bio recipe of bench_hybrid.bio_rmse on `frame`, exported (read from / written to CACHE when set)"
    from fastcf.export import CollabExport
    path = None if CACHE is None else Path(CACHE) / f"bio_{name}_seed{seed}_{'_'.join(f'{k}{v}' for k, v in sorted(cfg.items()))}.fcf"
    if path is not None and path.exists(): return CollabExport.load(path)
    set_seed(seed, reproducible=True)
    fast = {} if 'sparse' not in cfg else dict(fast=cfg['sparse'])            # BIO's training path, where it names one
    dls = HybridDataLoaders.from_df(frame, user_features=fps, item_features=families, valid_pct=0.02, seed=seed, bs=cfg['bs'], device='cpu', **fast)
    learn = hybrid_learner(dls, n_factors=cfg['n_factors'], y_range=y_range, identity_drop={'user': cfg['idrop'], 'item': 0.},
                           **({} if 'sparse' not in cfg else dict(sparse=cfg['sparse'])))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(cfg['epochs'], cfg['lr'], wd=cfg['wd'])
    exp = from_learner(learn)
    if path is not None: path.parent.mkdir(parents=True, exist_ok=True); exp.save(path)
    return exp

def split(ratings, seed):
    "Training values, and the held-out molecules' ranked values: `rank` < POOL may be revealed, the rest are scored"
    rng = np.random.default_rng(seed)
    mols = ratings.molecule.unique()
    cold = set(rng.choice(mols, size=len(mols) // 5, replace=False))
    is_cold = ratings.molecule.isin(cold).to_numpy()
    held = ratings[is_cold].sample(frac=1, random_state=seed)
    held = held.assign(rank=held.groupby('molecule').cumcount())
    held = held[held.groupby('molecule').molecule.transform('size') >= MIN_VALUES]
    return ratings[~is_cold], held

def run_seed(seed, cfg) -> dict:
    ratings, truth = synthetic_ratings(preset='bio-small', seed=seed, return_truth=True)
    fps, families = bio_features(truth, seed)
    train_df, held = split(ratings, seed)
    test = held[held['rank'] >= POOL]
    mols = np.sort(test.molecule.unique())
    pos = pd.Index(fps[1]).get_indexer(mols)
    new_fps = (fps[0][pos], fps[1][pos], fps[2])
    y = test.pchembl.to_numpy()
    rmse = lambda p: float(np.sqrt(np.mean((p - y) ** 2)))
    score = lambda e: rmse(e.score_rows(e.users.rows(test.molecule), e.items.rows(test.target)))
    mean = train_df.pchembl.mean(); tbias = (train_df.pchembl - mean).groupby(train_df.target).mean()
    out = dict(seed=seed, molecules=len(mols), test_values=len(test), target_bias=rmse(mean + tbias.reindex(test.target).fillna(0).to_numpy()))
    y_range = (ratings.pchembl.min() - 0.5, ratings.pchembl.max() + 0.5)
    t = time.perf_counter()
    exp = train(train_df, fps, families, seed, cfg, y_range, 'cold')
    out['train_s'] = time.perf_counter() - t
    alone = fold_in(exp, features=new_fps)
    added = exp.add_users(new_fps)
    assert np.array_equal(alone.user_factors, added.user_factors) and np.array_equal(alone.user_bias, added.user_bias)
    out['features_0'], out['ratings_0'] = score(alone), score(fold_in(exp, ids=mols))
    t = time.perf_counter()
    for k in KS:
        seen = held[held['rank'] < k][['molecule', 'target', 'pchembl']]
        plain, prior = fold_in(exp, seen), fold_in(exp, seen, features=new_fps)
        out[f'ratings_{k}'], out[f'features_{k}'] = score(plain), score(prior)
        out[f'wd_ratings_{k}'], out[f'wd_features_{k}'] = plain.folded.attrs['wd'], prior.folded.attrs['wd']
        out[f'feature_var_{k}'] = prior.folded.attrs['feature_var']
    out['foldin_s'] = time.perf_counter() - t
    t = time.perf_counter()
    warm = train(pd.concat([train_df, held[held['rank'] < POOL][['molecule', 'target', 'pchembl']]]), fps, families, seed, cfg, y_range, 'warm')
    out['warm_10'], out['warm_s'] = score(warm), time.perf_counter() - t
    print(f"  seed {seed}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in out.items()), flush=True)
    return out

def table(df:pd.DataFrame) -> str:
    "The markdown table: RMSE mean +- spread per method and number of revealed values, and the paired gains"
    cell = lambda c: f"{df[c].mean():.4f} ± {df[c].max() - df[c].min():.4f}" if c in df else '–'
    lines = ["| held-out molecules' RMSE | k = 0 | k = 1 | k = 3 | k = 10 |", "|---|---|---|---|---|",
             f"| target bias only | {cell('target_bias')} | | | |",
             "| ratings alone (`fold_in`, average-molecule prior) | " + " | ".join(cell(f'ratings_{k}') for k in (0,) + KS) + " |",
             "| features + ratings (`fold_in(features=)`, fingerprint prior) | " + " | ".join(cell(f'features_{k}') for k in (0,) + KS) + " |",
             f"| warm: retrained with the 10 values | | | | {cell('warm_10')} |"]
    lines.append("\nPaired by seed, features + k ratings minus the better of features alone and k ratings alone: " + ", ".join(
        f"k = {k}: " + "/".join(f"{v:+.4f}" for v in df[f'features_{k}'] - np.minimum(df['features_0'], df[f'ratings_{k}'])) for k in KS))
    lines.append("Default wd (mean over seeds), ratings alone / features + ratings: " + ", ".join(
        f"k = {k}: {df[f'wd_ratings_{k}'].mean():.1f} / {df[f'wd_features_{k}'].mean():.1f}" for k in KS))
    lines.append("Estimated feature_var (mean over seeds): " + ", ".join(f"k = {k}: {df[f'feature_var_{k}'].mean():.3f}" for k in KS))
    return "\n".join(lines)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--set', nargs='*', default=[], help="overrides of bench_hybrid.BIO, e.g. epochs=2")
    p.add_argument('--out', default=None)
    p.add_argument('--cache', default=None, help="folder keeping the trained exports, so a rerun skips training")
    a = p.parse_args()
    global CACHE
    CACHE = a.cache
    cfg = dict(BIO)
    for kv in a.set:
        k, v = kv.split('='); cfg[k] = v.lower() in ('1', 'true') if isinstance(cfg[k], bool) else type(cfg[k])(v)
    torch.set_num_threads(2)
    print(f"bio-small preset, planted fingerprints and families; {cfg}; first {POOL} values revealable, molecules with >= {MIN_VALUES} values")
    t = time.perf_counter()
    df = pd.DataFrame([run_seed(seed, cfg) for seed in a.seeds])
    print(f"\n{len(a.seeds)} seeds, {df.molecules.mean():.0f} held-out molecules and {df.test_values.mean():.0f} test values a seed; "
          f"{time.perf_counter() - t:.0f} s in all\n")
    print(table(df))
    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); df.to_csv(a.out, index=False)

if __name__ == '__main__': main()
