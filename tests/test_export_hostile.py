"""Hostile and damaged export files: `CollabExport.load` answers every one with `ExportFormatError` (and the CLI with one
line and exit 2), never another exception, an unbounded allocation or a silently wrong model; `save` keeps every ID,
writes files with the umask's permissions and names the output path in its errors; weights must be finite."""
import base64, io, json, os, subprocess, sys, textwrap, zipfile, zlib
from pathlib import Path
import numpy as np, pytest, torch
from fastcf.export import CollabExport, ExportFormatError
from fastcf.format import FORMAT_VERSION
from fastcf.vocab import Vocab
from fastcf.models import EmbeddingNN

ROOT = Path(__file__).resolve().parents[1]


def small_export(user_ids=None, seed=0, y_range=(0, 5)):
    "A dot export with string user IDs, integer item IDs and training counts"
    r = np.random.default_rng(seed)
    user_ids = [f"u{i}" for i in range(6)] if user_ids is None else user_ids
    n, m = len(user_ids) + 1, 5
    return CollabExport('dot', 'user', 'item', Vocab(user_ids, 1, 'user'), Vocab(np.arange(m - 1), 1, 'item'),
                        r.normal(size=(n, 3)), r.normal(size=(m, 3)), r.normal(size=n), r.normal(size=m), y_range=y_range,
                        user_counts=np.arange(n), item_counts=np.arange(m))


def nn_export():
    torch.manual_seed(0)
    model = EmbeddingNN([(4, 3), (5, 2)], [6, 3], y_range=(0, 5))
    return CollabExport.from_model(model, {'user': ['#na#', 1, 2, 3], 'item': ['#na#'] + list('abcd')})


def npy(a) -> bytes:
    f = io.BytesIO(); np.lib.format.write_array(f, np.asarray(a), allow_pickle=False); return f.getvalue()


def members(path) -> dict:
    with zipfile.ZipFile(path) as z: return {n: z.read(n) for n in z.namelist()}


def meta_of(path) -> dict: return json.loads(np.load(io.BytesIO(members(path)['__meta__.npy'])).tobytes())


def rewrite(src, dst, meta=..., arrays=None, raw=None, fix_checksums=True):
    "Copy export `src` to `dst` with some members replaced: `meta` (any JSON value), `arrays` (name → array), `raw` (member → bytes)"
    files = members(src)
    m = meta_of(src) if meta is ... else meta
    for name, a in (arrays or {}).items():
        files[f"{name}.npy"] = npy(a)
        if fix_checksums and isinstance(m, dict) and name in m.get('arrays', {}):
            m['arrays'][name] = dict(dtype=a.dtype.str, shape=list(a.shape),
                                     crc32=zlib.crc32(npy(a)))
    files['__meta__.npy'] = npy(np.frombuffer(json.dumps(m).encode(), np.uint8))
    files.update(raw or {})
    with zipfile.ZipFile(dst, 'w') as z:
        for n, b in files.items(): z.writestr(n, b)
    return dst


@pytest.fixture
def saved(tmp_path): return small_export().save(tmp_path / 'model.fcf')


# --- item 1: the module's API

def test_star_import_gives_only_callables_and_constants():
    ns = {}
    exec('from fastcf.export import *', ns)
    names = sorted(k for k in ns if k != '__builtins__')
    assert names == sorted(['ACTIVATIONS', 'Side', 'mlp_ops', 'run_ops', 'ExportFormatError', 'CollabExport', 'from_learner'])
    for k in names: assert callable(ns[k]) or isinstance(ns[k], (str, int, dict)), (k, ns[k])


def test_methods_live_on_the_class(saved):
    e = CollabExport.load(saved)                       # a classmethod reached through the class
    assert isinstance(e, CollabExport) and callable(CollabExport.from_model) and callable(CollabExport.from_learner)
    for name in ('save', 'score_rows', 'factors', 'biases', 'plot_factors'): assert callable(getattr(e, name))
    assert e.factors('user').shape == (6, 3) and e.biases('item').shape == (4,)


# --- item 2: non-finite weights and y_range

@pytest.mark.parametrize('side,table,row,value,who', [('item', 'factors', 3, np.nan, 'item ID 2'),
                                                       ('user', 'bias', 2, np.inf, "user ID 'u1'"),
                                                       ('user', 'factors', 0, -np.inf, "'#na#' placeholder")])
def test_non_finite_weights_are_refused(side, table, row, value, who):
    e = small_export()
    kw = {k: getattr(e, k) for k in ('user_factors', 'item_factors', 'user_bias', 'item_bias')}
    kw[f'{side}_{table}'] = kw[f'{side}_{table}'].copy(); kw[f'{side}_{table}'][row] = value
    with pytest.raises(ValueError) as err:
        CollabExport('dot', 'user', 'item', e.users, e.items, y_range=(0, 5), **kw)
    msg = str(err.value)
    assert f'{side} {table}' in msg and f'row {row}' in msg and who in msg, msg


def test_non_finite_model_weights_refused_by_from_model():
    torch.manual_seed(0)
    model = EmbeddingNN([(4, 3), (5, 2)], [6, 3], y_range=(0, 5))
    classes = {'user': ['#na#', 1, 2, 3], 'item': ['#na#'] + list('abcd')}
    with torch.no_grad(): model.embeds[1].weight[2, 1] = float('nan')
    with pytest.raises(ValueError, match=r"item factors .* row 2 \(item ID 'b'\)"): CollabExport.from_model(model, classes)
    with torch.no_grad(): model.embeds[1].weight[2, 1] = 0.; model.layers[0][0].weight[0, 0] = float('inf')
    with pytest.raises(ValueError, match=r"mlp op 0 \(linear\) weight"): CollabExport.from_model(model, classes)


@pytest.mark.parametrize('y_range', [(0, float('nan')), (5, 1), (2, 2), (0, float('inf')), [1], 'ab'])
def test_y_range_must_be_finite_and_increasing(y_range):
    with pytest.raises(ValueError, match='y_range'): small_export(y_range=y_range)


def test_load_refuses_non_finite_weights(saved, tmp_path):
    f = CollabExport.load(saved).item_factors.copy(); f[2, 0] = np.nan
    bad = rewrite(saved, tmp_path / 'nan.fcf', arrays={'item_factors': f})
    with pytest.raises(ExportFormatError, match=r"item factors .* row 2 \(item ID 1\)"): CollabExport.load(bad)


# --- item 3: corrupted files

def flip_compression(data:bytes, signature:bytes, offset:int) -> bytes:
    "Set the compression method of the first zip header with `signature` to 99"
    i = data.index(signature)
    return data[:i + offset] + b'\x63\x00' + data[i + offset + 2:]


BAD_META = {'list': [1, 2], 'null': None, 'string version': 'fv', 'y_range [1]': 'yr', 'mlp {}': 'mlp',
            'users list': 'users', 'arrays missing': 'arrays', 'kind': 'kind'}


def bad_meta(saved, case):
    m = meta_of(saved)
    if case == 'fv': m['format_version'] = '1'
    elif case == 'yr': m['y_range'] = [1]
    elif case == 'mlp': m['mlp'] = {}
    elif case == 'users': m['users'] = ['str', 1]
    elif case == 'arrays': del m['arrays']
    elif case == 'kind': m['kind'] = 'svd'
    else: m = case
    return m


@pytest.mark.parametrize('case', BAD_META)
def test_bad_metadata_gets_export_format_error(saved, tmp_path, case):
    bad = rewrite(saved, tmp_path / 'bad.fcf', meta=bad_meta(saved, BAD_META[case]))
    with pytest.raises(ExportFormatError): CollabExport.load(bad)


def test_flipped_compression_byte(saved, tmp_path):
    "The central directory's compression method is the one zipfile uses (the local header's copy is ignored)"
    bad = tmp_path / 'bad.fcf'
    bad.write_bytes(flip_compression(saved.read_bytes(), b'PK\x01\x02', 10))
    with pytest.raises(ExportFormatError, match='compression method 99'): CollabExport.load(bad)


def test_every_damaged_byte_gives_export_format_error(saved, tmp_path):
    "Each byte flipped in turn, and truncation at each length: the file loads (unchanged arrays) or gets ExportFormatError"
    data, good = saved.read_bytes(), CollabExport.load(saved)
    bad = tmp_path / 'bad.fcf'
    for i in range(0, len(data), 3):
        for damaged in (data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:], data[:i]):
            bad.write_bytes(damaged)
            try: e = CollabExport.load(bad)
            except ExportFormatError: continue
            np.testing.assert_array_equal(e.user_factors, good.user_factors)
            assert e.user_ids.tolist() == good.user_ids.tolist() and e.y_range == good.y_range



@pytest.mark.parametrize('old,new', [(b"(5,), }", b"(5,),  "), (b"'<f4'", b"'<f4 "), (b"(5,)", b"(5L,)")])
def test_damaged_npy_header_names_the_member(saved, tmp_path, old, new):
    "numpy's header parser let tokenize.TokenError out on the first (an unclosed brace); the strict reader names the member"
    files = members(saved)
    assert old in files['item_bias.npy']
    files['item_bias.npy'] = files['item_bias.npy'].replace(old, new)
    with zipfile.ZipFile(tmp_path / 'bad.fcf', 'w') as z:
        for n, b in files.items(): z.writestr(n, b)
    with pytest.raises(ExportFormatError, match=r"member 'item_bias' has no valid \.npy header"): CollabExport.load(tmp_path / 'bad.fcf')


@pytest.mark.parametrize('edit', ['drop bias', 'extra key'])
def test_mlp_op_keys_are_exact(tmp_path, edit):
    "A linear op without its 'bias' key loaded, and then recommend's scorer raised KeyError: 'bias'"
    saved = nn_export().save(tmp_path / 'nn.fcf')
    m = meta_of(saved)
    if edit == 'drop bias': del m['mlp'][0]['bias']
    else: m['mlp'][1]['slope'] = 0.1
    bad = rewrite(saved, tmp_path / 'bad.fcf', meta=m)
    with pytest.raises(ExportFormatError, match=r"mlp op [01] \((linear|relu)\) has keys"): CollabExport.load(bad)

def run_cli(*args, cwd):
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    return subprocess.run([sys.executable, '-m', 'fastcf', *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.slow                      # four `fastcf` processes
def test_cli_reports_bad_files_on_one_line(saved, tmp_path):
    (tmp_path / 'flipped.fcf').write_bytes(flip_compression(saved.read_bytes(), b'PK\x01\x02', 10))
    rewrite(saved, tmp_path / 'list.fcf', meta=[1, 2])
    rewrite(saved, tmp_path / 'mlp.fcf', meta=bad_meta(saved, 'mlp'))
    (tmp_path / 'ratings.csv').write_text('user,item,rating\n1,2,3\n')
    cases = [('info', name) for name in ('flipped.fcf', 'list.fcf', 'mlp.fcf', 'ratings.csv')]
    cases += [('recommend', name, '--k', 5, '--out', 'x.csv') for name in ('flipped.fcf', 'mlp.fcf')]
    for args in cases:
            name = args[1]
            res = run_cli(*args, cwd=tmp_path)
            lines = [l for l in res.stderr.splitlines() if l.strip()]
            assert res.returncode == 2 and len(lines) == 1 and 'Traceback' not in res.stderr, (args, res.stderr)
            assert name in lines[0] and 'fastcf export' in lines[0], lines[0]
    assert not (tmp_path / 'x.csv').exists()


# --- item 4: IDs survive the file; the file grows with the IDs' length

def test_every_string_id_round_trips(tmp_path):
    ids = ['a\x00', 'a', '\x00', '', ' b ', 'b', 'é', 'e\u0301', '😀', '\ud800', 'tab\t', 'x' * 300]
    back = CollabExport.load(small_export(ids).save(tmp_path / 'ids.fcf'))
    assert back.user_ids.tolist() == ids
    assert all(type(v) is str for v in back.user_ids)


def test_file_grows_with_total_id_length(tmp_path):
    ids = [f"u{i}" for i in range(499)] + ['L' * 20_000]
    path = small_export(ids).save(tmp_path / 'long.fcf')
    assert path.stat().st_size < 100_000, path.stat().st_size     # fixed-width unicode: 500 × 20,000 × 4 bytes = 40 MB
    assert CollabExport.load(path).user_ids[-1] == 'L' * 20_000


V1_DOT = (
    "eNoL8GZm0WWAAEUG7oD0m/+hgIdBhKG0OLUoPjOlWC+voJKRQYBhCVQljJ7sF+obEMnIUMZQrZ6SWpxcpG6loG4Taqyuo6Cell9U"
    "UpSYF59flJIKEndLzClOBYoXZyQWpAL5GsY6mjoKtQoUAK5SoBsMoG75A8SGUDZIXAGIjYA4AMWHdVm/TyL7MLMkNRfZhxOgKifg"
    "9WGmBVE+NKLch1BnMDBCaVTf7FPX2APzjQAsvtISk0vyi+A+WgBVvQCvj9JMiPKRiY6CEWV+4lJlY7Rj0mbfx3Vd2d6W67qtjznn"
    "foGInXaVL5fZz8grskf1oYr14+PIPgTHF5oPZ0BVz6CGD40p92GEpcn+1tcL97+rkd8/77267dkzIgc6HRP2ofqs/uW22TCf8cLi"
    "LikzkcSkSHTEUZwU39XM3x+VYr1/mjP3/oOnFqJ5Z8fncn5k74AjCtk7PVClPdSJJYq9s+rjJTu2xlb7yRIsaF45fPjWRZhX+GEx"
    "k5xfmldCYqYispgwoX4xwQSlmbEWGw/nek9A9iA4rlA9SFyeItKDxtTzIAuaB1E9Nv/WvTjk0j0+Pje1JDE+Huaremj4wGisvqop"
    "NSSudDc1pdBfXNVKQFtyE0uUrBSU0hKLS5LTdJPzc3ISk3RTKwqA9ivpKEBVxJelFhVn5ucBVRoCBbMz81JAmlLywWrAKTQvMTcV"
    "JAbigATBsQoTBHFgKouBAtVwI4pLwKrz4gsSQXzDWqhWVFWZeSUYqirjgeGTDjI+2kDPQEfBVM8gFiicm1MAEgIxoY6GGAXxIMgw"
    "oGo9Q6Xa2gBvRiZdZtTmxxJo84KHAQEawNGF3BhB1wmq1idAy0pUnY+AJHIlj64TVIUugOZkARSdGxgZMCpUdN2g6mkGNJug6p7E"
    "xIBRWaHrBlUBMFfzoujOYWZArRDQtYKK2x5oaYqq1ZqFAbXwRdcKKt5gPuZH0crGyoBe2KFrBhUdMA+jan7OyoBekKBrBmVPUNYD"
    "YdRYOsDGgJJZA7xZ2UAynEAoBQzJWg4QDwA953ey"
)
V1_NN = (
    "eNrNlt9LFFEUx+/6sxbxFxEKQdNgbD921/2hIOs6+RARiLUvPkTFMO7OuFOzM8vMqOm62I8NRHwQFLF6U6mHAg2fam2TghKCqOgP"
    "6C3D6MmHfmr3zt7RmVkTYSWcZXa4Z8/3zP3ce/ecE2orLHKB7HUElP0+9GUdX2XgAOhWWJnmI4pbjPfZQCUYxZ76c+xcR3vogg30"
    "gIQjwiph2REgHEG+yeEkHJwkqzIj0pIcYZH9DCMoLLQrUSbOwvExn/O4k0gSeVx2G55HAX6GTDQP6j99NdLwKhsz0gxhz6FtaTq8"
    "/4uGgXPozKGYqfEf1Ckq9T3hmLAqyRskk9h7clsSrmFHJH4n4cuPxV5/MtVMt+8Pzs+upJdPpNLcjZfp83e+Bcxk8pX380YybX/2"
    "ONl6XfXCaGvvwpNncvPRKTE48LM2WPr5T7OZbHVl310jWUyIuz3uXpbviqo62Rz2ntslsoY8yZaqwhnizdhC69Np6ubgGlXX0EYt"
    "dQy3rM08pBbTE5nv7zItQv+rTI34OPOBSmXMxNHn05M6cQUm9rmVMCOwOvAIdh7ZHeC8/26P1gdP6bcZ5vSvUXILmCjPqXsVRqq+"
    "FdBvMww10Q+sZ9FvOYu7SuN1Ev48z+L9xdvU8IsYtVo7azlnh1deV+k05Rs0nTyzkTFS2De1Oyx578z4PR9lyXvLPyqMdYmmY6zK"
    "0LROMIDLmf7ckmCge2d1qdHTlCeDPUHCt8QYlQwQJMcoaphzhSVBYDpd7LU4fD/pJLAH3cPKCi+J0BOeAvIqL0aQSBSRi1a4RCbG"
    "IhMaIKOW83UjGuieCjQkNiLwovYWkY4zaOxNYqnZS1HlHK8+Gi5PFwp/0eP2OIlGt+cyNMNzg0wJUkJPUuBFltHE2T8GshmTNvoF"
    "HTJoF7sFAQbWlTIrdJOGMcNxMBby15KfHgjnQs2O8ojBrg0NEf41F3/uXMjN42+MoPBdMYmPYHLoLki90K7xk1EYAw7gOiTRQuAd"
    "yy5kdndRCOjr9pLJZKjNVuAqNHeIo7gDLAOb13WtFTP2i1Yl6saGcLdlVr6F38bezKpEHdAk7gEqTcpxG8jph6xq1GVsrRYLQE7P"
    "YVWjSj6Hq7RZfbYQ5NR1qxpVxRGcVytM6kARsNZIqxhVoa3FpcXAWpOsYpT1dbF53h+x2L/NvFGWTeEcWm5ST5UAS87NWW+Y3VDm"
    "Qrd5n7lSYMp1obbiEvSLHX4uQW/CjkZ/AZzAD1g="
)


@pytest.mark.parametrize('blob', ['dot', 'nn'])
def test_format_1_files_still_load(tmp_path, blob):
    "Files written by fastcf's format-1 `save` (stored here as written)"
    path = tmp_path / 'v1.fcf'
    path.write_bytes(zlib.decompress(base64.b64decode(''.join(V1_DOT if blob == 'dot' else V1_NN))))
    assert meta_of(path)['format_version'] == 1 < FORMAT_VERSION
    e = CollabExport.load(path)
    if blob == 'dot':
        assert e.user_ids.tolist() == ['u0', 'ü1', 'u 2'] and e.item_ids.tolist() == [0, 1] and e.y_range == (0, 5)
        np.testing.assert_allclose(e.score_rows([1, 2, 3], [1, 2, 1]), [2.39579176902771, 3.105149745941162, 2.4418044090270996], rtol=1e-6)
        assert e.user_counts.tolist() == [0, 1, 2, 3]
    else:
        assert e.kind == 'nn' and e.item_ids.tolist() == ['a', 'b']
        np.testing.assert_allclose(e.score_rows([1, 2], [1, 2]), [2.7209339141845703, 2.720303535461426], rtol=1e-6)
    again = CollabExport.load(e.save(tmp_path / 'v2.fcf'))                 # and re-saved in the current format
    assert meta_of(tmp_path / 'v2.fcf')['format_version'] == FORMAT_VERSION
    np.testing.assert_array_equal(again.user_factors, e.user_factors)


# --- item 5: bounded memory, declared shapes, checksums

def test_swapped_member_is_detected(tmp_path):
    a, b = small_export(seed=0).save(tmp_path / 'a.fcf'), small_export(seed=1).save(tmp_path / 'b.fcf')
    swapped = rewrite(a, tmp_path / 'swapped.fcf', raw={'user_factors.npy': members(b)['user_factors.npy']})
    with pytest.raises(ExportFormatError, match="'user_factors' does not match the checksum"): CollabExport.load(swapped)


def test_huge_declared_shape_is_refused_before_allocating(saved, tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {'descr': '<f4', 'fortran_order': False, 'shape': (10**12, 3)})
    raw = {'user_factors.npy': header.getvalue() + b'\0' * 64}
    with pytest.raises(ExportFormatError, match="'user_factors' holds <f4 \\(1000000000000, 3\\)"):
        CollabExport.load(rewrite(saved, tmp_path / 'huge.fcf', raw=raw))
    m = meta_of(saved); m['arrays']['user_factors']['shape'] = [10**12, 3]     # metadata that agrees with it
    with pytest.raises(ExportFormatError, match='user_factors'): CollabExport.load(rewrite(saved, tmp_path / 'huge2.fcf', meta=m, raw=raw))
    m['users']['n_ids'] = 10**12 - 1                                          # and a vocab that agrees too
    with pytest.raises(ExportFormatError): CollabExport.load(rewrite(saved, tmp_path / 'huge3.fcf', meta=m, raw=raw))


def test_unknown_members_are_refused(saved, tmp_path):
    with pytest.raises(ExportFormatError, match="does not define: \\['extra.npy'\\]"):
        CollabExport.load(rewrite(saved, tmp_path / 'extra.fcf', raw={'extra.npy': npy(np.zeros(3))}))


def test_loading_a_zip_bomb_stays_small(saved, tmp_path):
    "An extra deflated member of 512 MiB of zeros (0.5 MB on disk): refused, and loading's peak memory stays small"
    bomb = tmp_path / 'bomb.fcf'
    bomb.write_bytes(saved.read_bytes())
    with zipfile.ZipFile(bomb, 'a', compression=zipfile.ZIP_DEFLATED) as z, z.open('pad.npy', 'w', force_zip64=True) as f:
        header = io.BytesIO(); np.lib.format.write_array_header_1_0(header, {'descr': '|u1', 'fortran_order': False, 'shape': (1 << 29,)})
        f.write(header.getvalue())
        zeros = bytes(1 << 24)
        for _ in range(32): f.write(zeros)
    assert bomb.stat().st_size < 5_000_000
    code = textwrap.dedent(f"""
        import resource, sys
        from fastcf.export import CollabExport, ExportFormatError
        CollabExport.load({str(saved)!r})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try: CollabExport.load({str(bomb)!r}); print('loaded')
        except ExportFormatError as e: print('refused', e)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         env={**os.environ, 'PYTHONPATH': str(ROOT)}).stdout.splitlines()
    assert int(out[1]) < 64, f"loading grew the peak RSS by {out[1]} MB"
    assert out[0].startswith('refused') and 'pad.npy' in out[0], out


# --- item 6: messages that say what a file is

def test_text_and_pickle_files_say_what_they_are(tmp_path):
    (tmp_path / 'ratings.csv').write_text('user,item,rating\n1,2,3.5\n')
    with pytest.raises(ExportFormatError) as err: CollabExport.load(tmp_path / 'ratings.csv')
    assert 'text file' in str(err.value) and 'allow_pickle' not in str(err.value)
    torch.save({'model': torch.zeros(2)}, tmp_path / 'export.pkl')                       # what learn.export writes: a torch zip
    (tmp_path / 'old.pkl').write_bytes(b'\x80\x02}q\x00.')                               # a bare pickle
    for name in ('export.pkl', 'old.pkl'):
        with pytest.raises(ExportFormatError) as err: CollabExport.load(tmp_path / name)
        msg = str(err.value)
        assert 'pickle' in msg and 'from_learner(load_learner(path))' in msg and 'allow_pickle' not in msg, msg
    np.save(tmp_path / 'one.npy', np.zeros(3))
    with pytest.raises(ExportFormatError, match='single .npy array'): CollabExport.load(tmp_path / 'one.npy')
    np.savez(tmp_path / 'other.npz', x=np.zeros(3))
    with pytest.raises(ExportFormatError, match='archive without fastcf metadata'): CollabExport.load(tmp_path / 'other.npz')


def test_save_errors_name_the_output_path(tmp_path):
    if os.geteuid() != 0:
        folder = tmp_path / 'ro'; folder.mkdir(); folder.chmod(0o555); target = folder / 'model.fcf'
    else: target = Path('/sys/model.fcf')                                           # sysfs: read-only even for root
    with pytest.raises(OSError) as err: small_export().save(target)
    assert str(target) in str(err.value) and '.tmp' not in str(err.value), str(err.value)


# --- item 7: permissions

@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_file_honours_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try: path = small_export().save(tmp_path / 'model.fcf')
    finally: os.umask(old)
    assert path.stat().st_mode & 0o777 == mode, oct(path.stat().st_mode)
