"""Shared fixtures: the real MovieLens-100k ratings (fetched offline-safely from the recbole wheel on PyPI, cached, never
committed: its licence forbids redistribution), and helpers used by several test files."""
import os
from pathlib import Path
import numpy as np, pandas as pd, pytest

CACHE = Path(os.environ.get('FASTCF_TEST_CACHE', Path.home() / '.cache' / 'fastcf-tests'))


def _fetch_ml100k(folder: Path) -> Path:
    "A folder with MovieLens-100k's u.data, items.tsv and users.tsv, from the recbole 1.2.1 wheel (downloaded once)"
    from fastcf.data import movielens_100k_from_pypi
    return movielens_100k_from_pypi(folder)


def _recbole_wheel(folder: Path) -> Path:
    "The recbole wheel that carries MovieLens-100k (the benches read its side tables)"
    return next((_fetch_ml100k(folder) / 'wheel').glob('recbole-*.whl'))


@pytest.fixture(scope='session')
def ml100k_path() -> Path:
    "Folder holding MovieLens-100k's u.data (downloaded once per machine into the test cache)"
    return _fetch_ml100k(CACHE / 'ml-100k')


@pytest.fixture(scope='session')
def ml100k(ml100k_path) -> pd.DataFrame:
    from fastcf.data import movielens_100k
    df = movielens_100k(ml100k_path)
    assert df.shape == (100_000, 4), df.shape
    return df


@pytest.fixture(scope='session')
def ml100k_titles(ml100k_path) -> pd.DataFrame:
    "MovieLens-100k's movie → title table (columns movie, title), as fastai's tutorial reads it from u.item"
    items = pd.read_csv(ml100k_path / 'items.tsv', sep='\t', dtype={'movie': 'int64', 'title': str}, keep_default_na=False)
    titles = items[['movie', 'title']]
    assert titles.shape == (1682, 2) and titles.title.nunique() == 1664, (titles.shape, titles.title.nunique())
    return titles


# The reference a test checks a fastcf ranking against with `fastcf.testing.check_ranking_frame`; tests import it:
# `from conftest import dense_reference`.
def dense_reference(exp, users=None, items=None, exclude=None) -> tuple:
    "Float64 ranking keys and the scores of `users` × `items` (IDs; default all) as [user IDs, item IDs] frames; excluded pairs -inf"
    u = np.arange(1, len(exp.user_ids) + 1) if users is None else exp.users.rows(pd.unique(np.asarray(users, dtype=object)))
    i = np.arange(1, len(exp.item_ids) + 1) if items is None else exp.items.rows(pd.unique(np.asarray(items, dtype=object)))
    uu, ii = np.meshgrid(u, i, indexing='ij')
    scores = exp.score_rows(uu.ravel(), ii.ravel()).reshape(uu.shape).astype(np.float64)
    keys = scores.copy() if exp.kind == 'nn' else (exp.user_factors[u].astype(np.float64) @ exp.item_factors[i].T.astype(np.float64)
                                                    + exp.user_bias[u, None] + exp.item_bias[None, i])    # the logit, in float64
    user_ids, item_ids = exp.users.ids_of(u), exp.items.ids_of(i)
    if exclude is not None:
        ex = exclude[[exp.user_name, exp.item_name]]
        ex = ex[ex[exp.user_name].isin(user_ids) & ex[exp.item_name].isin(item_ids)]
        keys[pd.Index(user_ids).get_indexer(ex[exp.user_name]), pd.Index(item_ids).get_indexer(ex[exp.item_name])] = -np.inf
    return pd.DataFrame(keys, user_ids, item_ids), pd.DataFrame(scores, user_ids, item_ids)
