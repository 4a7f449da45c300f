"""Shared fixtures: the real MovieLens-100k ratings (fetched offline-safely from the recbole wheel on PyPI, cached, never
committed: its licence forbids redistribution), and helpers used by several test files."""
import io, os, subprocess, sys, zipfile
from pathlib import Path
import numpy as np, pandas as pd, pytest

CACHE = Path(os.environ.get('FASTCF_TEST_CACHE', Path.home() / '.cache' / 'fastcf-tests'))
RECBOLE = 'recbole==1.2.1'
INTER = 'recbole/dataset_example/ml-100k/ml-100k.inter'


def _fetch_ml100k(folder: Path) -> Path:
    "Write MovieLens-100k's u.data into `folder`, from the copy inside the recbole 1.2.1 wheel"
    data = folder / 'u.data'
    if data.exists(): return folder
    folder.mkdir(parents=True, exist_ok=True)
    wheels = folder / 'wheel'
    if not list(wheels.glob('recbole-*.whl')):
        subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--quiet', RECBOLE, '-d', str(wheels)], check=True)
    wheel = next(wheels.glob('recbole-*.whl'))
    with zipfile.ZipFile(wheel) as z: raw = z.read(INTER)
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
