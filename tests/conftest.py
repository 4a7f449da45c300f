"""Shared fixtures: the real MovieLens-100k ratings (fetched offline-safely from the recbole wheel on PyPI, cached, never
committed: its licence forbids redistribution), and helpers used by several test files."""
import io, os, subprocess, sys, zipfile
from pathlib import Path
import numpy as np, pandas as pd, pytest

CACHE = Path(os.environ.get('FASTCF_TEST_CACHE', Path.home() / '.cache' / 'fastcf-tests'))
RECBOLE = 'recbole==1.2.1'
INTER = 'recbole/dataset_example/ml-100k/ml-100k.inter'
ITEM = 'recbole/dataset_example/ml-100k/ml-100k.item'


def _recbole_wheel(folder: Path) -> Path:
    "The recbole wheel that carries MovieLens-100k, downloaded once into `folder`/wheel"
    folder.mkdir(parents=True, exist_ok=True)
    wheels = folder / 'wheel'
    if not list(wheels.glob('recbole-*.whl')):
        subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--quiet', RECBOLE, '-d', str(wheels)], check=True)
    return next(wheels.glob('recbole-*.whl'))


def _fetch_ml100k(folder: Path) -> Path:
    "Write MovieLens-100k's u.data into `folder`, from the copy inside the recbole 1.2.1 wheel"
    data = folder / 'u.data'
    if data.exists(): return folder
    with zipfile.ZipFile(_recbole_wheel(folder)) as z: raw = z.read(INTER)
    df = pd.read_csv(io.BytesIO(raw), sep='\t')
    df.columns = ['user', 'movie', 'rating', 'timestamp']
    df = df.astype({'user': 'int64', 'movie': 'int64', 'rating': 'int64', 'timestamp': 'int64'})
    tmp = data.with_suffix('.tmp')
    df.to_csv(tmp, sep='\t', header=False, index=False)
    os.replace(tmp, data)
    return folder


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


def _titles_from_recbole(raw: bytes) -> pd.DataFrame:
    """movie → title, rebuilt in u.item's 'Title (Year)' form from recbole's ml-100k.item.

    recbole splits u.item's title into `movie_title` and `release_year` (e.g. 'Toy Story' + '1995'); we join them back.
    Two rows are irregular and kept as the file gives them: movie 1412's year field is 'V' (u.item's
    '... (1995) (V)', which this rebuilds exactly), and movie 267, titled 'unknown' in u.item, is 'unkonwn' in both
    fields here: its title stays 'unkonwn'. The result has 1,682 movies and 1,664 distinct titles, as u.item."""
    df = pd.read_csv(io.BytesIO(raw), sep='\t', dtype=str, keep_default_na=False)
    df.columns = ['movie', 'title', 'year', 'genres']
    has_year = df.year != 'unkonwn'
    title = df.title.where(~has_year, df.title + ' (' + df.year + ')')
    return pd.DataFrame({'movie': df.movie.astype('int64'), 'title': title})


@pytest.fixture(scope='session')
def ml100k_titles(ml100k_path) -> pd.DataFrame:
    "MovieLens-100k's movie → title table (columns movie, title), as fastai's tutorial reads it from u.item"
    file = ml100k_path / 'titles.tsv'
    if not file.exists():
        with zipfile.ZipFile(_recbole_wheel(ml100k_path)) as z: titles = _titles_from_recbole(z.read(ITEM))
        tmp = file.with_suffix('.tmp')
        titles.to_csv(tmp, sep='\t', index=False)
        os.replace(tmp, file)
    titles = pd.read_csv(file, sep='\t', dtype={'movie': 'int64', 'title': str}, keep_default_na=False)
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
