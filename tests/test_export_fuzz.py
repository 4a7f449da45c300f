"""A seeded fuzzer over `CollabExport.load`: thousands of damaged copies of a dot and an NN export (byte flips,
truncations and inserted bytes in the raw file, in each member and in each member's .npy header; edits of the header's
fields and of the metadata's JSON; flipped and extreme values with the checksums fixed so the damage gets past them).
Every copy must load or fail with `ExportFormatError` (naming the member when one member is damaged in a sound zip), no
warning may escape the loader, and whatever loads must be finite and `recommend` on it must give finite scores.
`python tests/test_export_fuzz.py [cases]` prints the counts by exception."""
import collections, io, json, random, struct, sys, tempfile, warnings, zipfile, zlib
from pathlib import Path
import numpy as np
from fastcf.testing import random_export
from fastcf.export import CollabExport, ExportFormatError
from fastcf.predict import recommend
from fastcf.topk import NonFiniteKeysError

HOSTILE = [None, True, False, -1, 0, 1, 3, 2**63, -2**70, 1e308, -0.5, float('nan'), float('inf'), '', 'x', 'str', 'int',
           'float', 'dot', 'nn', 'relu', 'linear', 'mlp.0.weight', '<f4', '|u1', [], {}, [1, 2], [0, 5], [[[]]],
           {'op': 'relu'}, {'dtype': '<f4', 'shape': [2], 'crc32': 0}]
SPECIAL_FLOATS = [np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45, -0.]
SPECIAL_INTS = [-1, 0, 2**62, -2**63, 10**6]
HEADER_CHARS = b"'\"(){}[],:L#\\\n\x00 0123456789-.eTFj<>|=\x80\xff"
DESCRS = ["'<f8'", "'>f4'", "'|O'", "'<U3'", "'<U0'", "'|V8'", "'float32'", "[('a', '<f4')]", "'<f4", "'<f4' + 'x'",
          "'<M8[s]'", "'<c8'", "'?'", "'S5'", "b'<f4'", "'<f99999999999'", "''", "None", "1"]
SHAPES = ["()", "(-1,)", "(99999999999999999999,)", "(1, 2, 3)", "(1.5,)", "(True,)", "[3]", "(3 4)", "((3,),)",
          "(0,)", "(0, 0)", "(" + "(" * 200 + ")" * 200 + ")", "(2**64,)", "(1_0,)", "(3L,)", "(0x3,)"]
ORDERS = ["True", "1", "None", "'False'", "false"]


def exports() -> dict:
    "Two small exports, a dot with string IDs and an NN with integer IDs, as file bytes"
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for kind, ids in (('dot', 'str'), ('nn', 'int')):
            e = random_export(n_users=5, n_items=4, n_factors=3, kind=kind, ids=ids, layers=(4,), seed=1)
            out[kind] = e.save(Path(d) / f'{kind}.fcf').read_bytes()
    return out


def members(data:bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as z: return {n: z.read(n) for n in z.namelist()}


def zipped(files:dict) -> bytes:
    "A well-formed zip of `files` (its own CRCs right), so the damage inside reaches the .npy reader"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        for n, b in files.items(): z.writestr(n, b)
    return buf.getvalue()


def npy(a) -> bytes:
    f = io.BytesIO(); np.lib.format.write_array(f, np.asarray(a), allow_pickle=False); return f.getvalue()


def header_span(b:bytes) -> tuple:
    "Start and end of the header text of .npy bytes `b` (format 1.0, which numpy writes for every member of an export)"
    assert b[6:8] == b'\x01\x00'
    return 10, 10 + struct.unpack('<H', b[8:10])[0]


def flip(b:bytes, r, lo=0, hi=None) -> bytes:
    hi = len(b) if hi is None else hi
    if hi <= lo: return b
    i = r.randrange(lo, hi)
    return b[:i] + bytes([b[i] ^ r.randrange(1, 256)]) + b[i + 1:]


def insert(b:bytes, r, lo=0, hi=None) -> bytes:
    i = r.randint(lo, len(b) if hi is None else hi)
    return b[:i] + bytes(r.randrange(256) for _ in range(r.randint(1, 8))) + b[i:]


def edit_header(b:bytes, r) -> bytes:
    "An edit of the .npy header of `b`: a byte flipped or replaced by a syntax character, a field swapped, the length or version changed"
    lo, hi = header_span(b)
    text, how = b[lo:hi], r.randrange(6)
    if how == 0: return flip(b, r, lo, hi)
    if how == 1:
        i = r.randrange(lo, hi)
        return b[:i] + bytes([r.choice(HEADER_CHARS)]) + b[i + 1:]
    if how == 2:
        key, pool = r.choice([(b"'descr': ", DESCRS), (b"'shape': ", SHAPES), (b"'fortran_order': ", ORDERS)])
        i = text.index(key) + len(key)
        j = min(k for k in (text.find(b", '", i), text.find(b', }', i)) if k >= 0) if key != b"'shape': " else text.index(b')', i) + 1
        text = text[:i] + r.choice(pool).encode() + text[j:]
        return b[:8] + struct.pack('<H', len(text)) + text + b[hi:]
    if how == 3:
        n = hi - lo + r.choice([-hi, -64, -1, 1, 7, 64, 1000])
        return b[:8] + struct.pack('<H', max(n, 0)) + b[10:]
    if how == 4: return b[:6] + bytes(r.choice([(2, 0), (3, 0), (0, 0), (1, 1), (9, 9)])) + b[8:]
    return insert(b, r, lo, hi)


def edit_meta(meta, r):
    "`meta` with one value somewhere replaced by a hostile one, or one key removed"
    meta = json.loads(json.dumps(meta))
    spots = []
    def walk(o):
        for k in (o if isinstance(o, dict) else range(len(o)) if isinstance(o, list) else []):
            spots.append((o, k)); walk(o[k])
    walk(meta)
    o, k = r.choice(spots)
    if isinstance(o, dict) and r.random() < 0.2: del o[k]
    else: o[k] = r.choice(HOSTILE)
    return meta


def damage(data:bytes, r, case:int) -> tuple:
    "Damaged copy `case` of export `data`, what was done, and the member the error must name (None: no one member)"
    files = members(data)
    name = sorted(files)[case % len(files)]             # every member in turn
    stem = name[:-4]
    how = r.randrange(9)
    if how == 0: return flip(data, r), 'raw flip', None
    if how == 1: return data[:r.randrange(len(data))], 'raw truncation', None
    if how == 2: return insert(data, r), 'raw insertion', None
    if 3 <= how <= 6:                                    # one member damaged in a sound zip: the error names it
        files[name] = [flip, lambda b, r: b[:r.randrange(len(b))], insert, edit_header][how - 3](files[name], r)
        named = stem if how == 6 or stem != '__meta__' else None    # damaged metadata JSON may fail a later check
        return zipped(files), f"{name} {['flip', 'truncation', 'insertion', 'header edit'][how - 3]}", named
    meta = json.loads(np.load(io.BytesIO(files['__meta__.npy'])).tobytes())
    if how == 7:                                         # a metadata value edited, the file otherwise consistent
        files['__meta__.npy'] = npy(np.frombuffer(json.dumps(edit_meta(meta, r)).encode(), np.uint8))
        return zipped(files), 'metadata edit', None
    if stem == '__meta__':                               # the metadata's JSON text damaged, its .npy header right
        text = json.dumps(meta).encode()
        text = r.choice([flip, insert])(text, r) if r.random() < 0.7 else text[:r.randrange(len(text))]
        files[name] = npy(np.frombuffer(text, np.uint8))
        return zipped(files), 'metadata text', None
    lo, hi = header_span(files[name])                    # values changed with both checksums fixed: past every CRC
    a = np.load(io.BytesIO(files[name]))
    if r.random() < 0.5 or a.size == 0 or a.dtype == np.uint8:
        for _ in range(r.randint(1, 4)): files[name] = flip(files[name], r, hi)
    else:                                                # a value the loader must refuse, or rank with
        a.reshape(-1)[r.randrange(a.size)] = r.choice(SPECIAL_FLOATS if a.dtype.kind == 'f' else SPECIAL_INTS)
        files[name] = npy(a)
    meta['arrays'][stem]['crc32'] = zlib.crc32(files[name])
    files['__meta__.npy'] = npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return zipped(files), f'{name} values (checksums fixed)', None


def fuzz(n:int, path, seed:int=0) -> tuple:
    "Load `n` damaged copies: the escapes (exceptions or warnings outside `ExportFormatError`), how many loaded, and what was done"
    r, escapes, loaded, done = random.Random(seed), [], 0, collections.Counter()
    for kind, data in exports().items():
        for case in range(n // 2):
            bad, what, member = damage(data, r, case)
            done[kind, what] += 1
            path.unlink(missing_ok=True); path.write_bytes(bad)   # a new file: truncating one can cost 4 ms on ext4
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter('error')         # a warning from the loader (numpy's Python 2 header one) escapes too
                    e = CollabExport.load(path)
            except ExportFormatError as err:
                if member is not None and repr(member) not in str(err):
                    escapes.append((kind, case, what, 'ExportFormatError not naming the member', str(err)[:200]))
                continue
            except Exception as err:
                escapes.append((kind, case, what, type(err).__name__, str(err)[:200])); continue
            loaded += 1
            try:
                for a in (e.user_factors, e.item_factors, e.user_bias, e.item_bias):
                    assert a is None or np.isfinite(a).all(), 'a loaded export holds non-finite weights'
                with warnings.catch_warnings():              # huge finite weights overflow a product: a RuntimeWarning
                    warnings.simplefilter('ignore', RuntimeWarning)
                    recs = recommend(e, k=3, device='cpu', progress=False)
                assert np.isfinite(recs['score'].to_numpy()).all(), 'non-finite scores'
            except NonFiniteKeysError: continue          # huge finite weights whose products overflow: refused, naming the users
            except Exception as err:
                escapes.append((kind, case, what, f'recommend: {type(err).__name__}', str(err)[:200]))
    return escapes, loaded, done


def test_fuzzed_exports_load_or_raise_export_format_error(tmp_path):
    escapes, loaded, done = fuzz(3000, tmp_path / 'bad.fcf')
    assert not escapes, f"{len(escapes)} escapes, e.g. {escapes[:5]}"
    for kind, data in exports().items():               # every member of both exports had its header edited and its bytes flipped
        for name in members(data):
            assert done[kind, f'{name} header edit'] and done[kind, f'{name} flip'], (kind, name)
    assert all(done[kind, w] for kind in ('dot', 'nn') for w in ('raw flip', 'raw truncation', 'raw insertion', 'metadata edit', 'metadata text'))
    assert loaded > 0            # some damage is harmless (a padding byte, an unused metadata value): those load and rank


if __name__ == '__main__':          # python tests/test_export_fuzz.py [cases]: the counts, by exception
    import time
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter(); escapes, loaded, _ = fuzz(n, Path(d) / 'bad.fcf'); t = time.perf_counter() - t
    print(f"{n} cases in {t:.1f} s: {loaded} loaded, {len(escapes)} escapes")
    for k, v in collections.Counter((x[3], x[2].split(' ', 1)[-1]) for x in escapes).most_common(): print(f"  {v:5d} {k}")
    for x in escapes[:8]: print('   ', x)
