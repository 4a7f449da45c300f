"""Regenerate the tutorials' saved outputs: the ONE command that produces what a reader sees under each cell.

    python tools/run_tutorials.py                          # every nbs/8?_tutorial.*.ipynb
    python tools/run_tutorials.py nbs/83_tutorial.rules.ipynb ...   # just these
    python tools/run_tutorials.py --check                  # execute nothing: check the saved outputs only
    python tools/run_tutorials.py nbs/41_explain.ipynb     # a reference page: its outputs, held to the no-warning rules
    python tools/run_tutorials.py --slowest 3 ...          # also print each notebook's three slowest cells

Each notebook runs top to bottom in a fresh Python process (a new execnb `CaptureShell`, nbdev's own runner), with `nbs/`
as working directory and this checkout first on `sys.path`, like `nbdev-test`. On success the notebook is rewritten
with its outputs (atomically: an error leaves the old file untouched) and `nbdev-clean`ed. The run fails, naming the
notebook and cell, when a cell raises, or when an output holds a warning, a traceback, a stderr stream, a machine path,
a progress bar, fastai's time column or a memory address, or when a cell that should show something shows nothing
(`needs_output`). tests/test_tutorials.py applies the same checks (`problems`) to the committed notebooks.
"""
import argparse, ast, json, os, re, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
PATTERN = '8?_tutorial.*.ipynb'

def tutorials(paths=()) -> list:
    "The notebooks named in `paths`, or every tutorial in nbs/ (`8?_tutorial.*.ipynb`), sorted"
    return [Path(p).resolve() for p in paths] if paths else sorted(NBS.glob(PATTERN))

# ---- what an output must not hold -------------------------------------------------------------------------------
BAD_TEXT = [
    ('a warning',           re.compile(r'\b\w*Warning:|warnings\.warn\(')),
    ('a traceback',         re.compile(r'Traceback \(most recent call last\)')),
    ('a machine path',      re.compile(r'/root/|/home/|/Users/|site-packages|/tmp/|/var/folders/|/work/|\b[A-Z]:\\\w')),
    ('a progress bar',      re.compile(r'<progress\b|\d+%\|[#█▉▊▋▌▍▎▏ ]*\|')),
    ("fastai's time column", re.compile(r'<th>time</th>')),
    ('a memory address',    re.compile(r'\bat 0x[0-9a-fA-F]{6,}')),
]

def _text(v) -> str: return ''.join(v) if isinstance(v, list) else str(v)

def output_problems(output:dict) -> list:
    "What is wrong with one saved output (empty list: nothing)"
    kind, found = output.get('output_type'), []
    if kind == 'error': found.append(f"an error output ({output.get('ename')}: {output.get('evalue')})")
    if kind == 'stream' and output.get('name') == 'stderr': found.append(f"a stderr stream ({_text(output.get('text'))[:80]!r})")
    texts = [_text(output.get('text', ''))] + [_text(v) for k, v in output.get('data', {}).items() if not k.startswith('image/')]
    texts += [_text(output.get('traceback', ''))]
    for what, rx in BAD_TEXT:
        m = next((m for t in texts if (m := rx.search(t))), None)
        if m: found.append(f"{what} ({m.string[max(0, m.start()-30):m.end()+30]!r})")
    return found

# ---- which cells must show something ----------------------------------------------------------------------------
def _source(cell:dict) -> str: return _text(cell.get('source', ''))

def _directives(src:str) -> dict:
    "nbdev's `#| name: value` cell directives, as {name: value}"
    out = {}
    for line in src.splitlines():
        m = re.match(r'\s*#\|\s*([\w-]+):?\s*(.*)', line)
        if m: out[m.group(1)] = m.group(2).strip()
    return out

def _call_name(node) -> str:
    "The dotted name of a call's function (`plt.plot`, `learn.show_results`, `print`), '' if not a plain name"
    f = node.func if isinstance(node, ast.Call) else None
    parts = []
    while isinstance(f, ast.Attribute): parts.append(f.attr); f = f.value
    if isinstance(f, ast.Name): parts.append(f.id)
    elif f is not None and parts: parts.append('?')     # e.g. `df.head().plot()`: keep the attribute chain
    return '.'.join(reversed(parts))

def is_plot(name:str) -> bool:
    "A plotting call: its name starts with `plot` or ends in `.plot`, or is `plt.*`"
    last = name.rsplit('.', 1)[-1]
    return last.startswith('plot') or name.startswith('plt.')

def is_show(name:str) -> bool:
    "fastai's `show_batch`/`show_results`: a table for tabular data, a figure for images; either way, an output"
    return name.rsplit('.', 1)[-1] in ('show_batch', 'show_results')

def needs_output(cell:dict) -> str:
    "Why this code cell must have a saved output ('' if it need not): the reason names the statement"
    if cell.get('cell_type') != 'code': return ''
    src = _source(cell)
    d = _directives(src)
    if d.get('eval', '').lower() == 'false': return ''
    code = '\n'.join('' if re.match(r'\s*[%!]', l) else l for l in src.splitlines())   # IPython magics and shell lines
    try: body = ast.parse(code).body
    except SyntaxError: return ''
    if not body: return ''
    for stmt in body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            name = _call_name(stmt.value)
            if name in ('print', 'display'): return f'calls {name}'
            if is_plot(name): return f'plots ({name})'
            if is_show(name): return f'shows ({name})'
    last = body[-1]
    if not isinstance(last, ast.Expr): return ''
    if code.rstrip().endswith(';'): return ''
    name = _call_name(last.value)
    if name.rsplit('.', 1)[-1].startswith('test_'): return ''     # fastcore's assertions return None by contract
    return 'ends in an expression'

def _has_image(outputs) -> bool: return any(k.startswith('image/') for o in outputs for k in o.get('data', {}))

def is_tutorial(path) -> bool: return 'tutorial' in Path(path).name

def problems(nb:dict, reference:bool=False) -> list:
    """Every problem in a notebook dict, as (cell index, message): outputs that must not be there, outputs that must.
    A reference page (its cells end in tests that return nothing) is held to the first rule only."""
    found = []
    for i, cell in enumerate(nb.get('cells', [])):
        src, outputs = _source(cell), cell.get('outputs', [])
        for o in outputs:
            found += [(i, f'saved output has {p}') for p in output_problems(o)]
        if reference: continue
        if cell.get('cell_type') == 'code':
            d = _directives(src)
            if 'export' in d or 'exports' in d or 'default_exp' in d:
                found.append((i, 'a tutorial exports nothing: remove `#| export`/`default_exp`'))
        why = needs_output(cell)
        if why and not outputs: found.append((i, f'{why} but has no saved output'))
        elif why.startswith('plots') and not _has_image(outputs): found.append((i, f'{why} but has no saved image'))
    return found

def describe(path, nb:dict, found:list) -> str:
    "The problems as lines naming notebook, cell and the cell's first line"
    cells = nb.get('cells', [])
    lines = []
    for i, msg in found:
        first = _source(cells[i]).strip().splitlines()[0][:60] if _source(cells[i]).strip() else ''
        lines.append(f"{Path(path).name}: cell {i} ({first!r}): {msg}")
    return '\n'.join(lines)

# ---- running ----------------------------------------------------------------------------------------------------
CHILD = r'''
import os, re, sys
from pathlib import Path
from execnb.shell import CaptureShell, read_nb, write_nb
src = Path(sys.argv[1]); tmp = src.with_name('.' + src.name + '.running')
nb = read_nb(src)
shell = CaptureShell(path=src.parent, mpl_format='png')   # not 'retina': nbdev-clean drops the size metadata, doubling the figure
import time
state, took = {'i': -1, 't': 0.}, []
def pre(cell):   # True skips the cell: `#| eval: false`, as nbdev-test does
    state.update(i=cell.idx_, t=time.perf_counter())
    return any(re.match(r'\s*#\|\s*eval:\s*false\s*$', l, re.I) for l in cell.source.splitlines())
def post(cell): took.append((time.perf_counter() - state['t'], cell.idx_, cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ''))
try: shell.run_all(nb, exc_stop=True, preproc=pre, postproc=post)
except BaseException as e:
    print(f"{src.name}: cell {state['i']} raised {type(e).__name__}: {e}", file=sys.stderr); sys.exit(1)
write_nb(nb, tmp); os.replace(tmp, src)
if int(sys.argv[2]):
    for t, i, first in sorted(took, reverse=True)[:int(sys.argv[2])]: print(f"  {t:6.1f} s  cell {i}: {first}")
'''

def run(path:Path, timeout:int, slowest:int=0) -> float:
    "Execute one notebook in place in a fresh process (cwd nbs/), then nbdev-clean it; its wall time in seconds"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    t0 = time.perf_counter()
    try: done = subprocess.run([sys.executable, '-c', CHILD, str(path), str(slowest)], cwd=path.parent, env=env, timeout=timeout)
    except subprocess.TimeoutExpired: sys.exit(f"{path.name}: did not finish in {timeout} s")
    took = time.perf_counter() - t0
    if done.returncode: sys.exit(f"{path.name}: execution failed (see above); the notebook was left as it was")
    subprocess.run(['nbdev-clean', '--fname', str(path)], cwd=ROOT, check=True)
    return took

def check(path:Path) -> bool:
    "Print the notebook's problems; True if it has none"
    nb = json.loads(path.read_text())
    found = problems(nb, reference=not is_tutorial(path))
    if found: print(describe(path, nb, found), file=sys.stderr)
    return not found

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('notebooks', nargs='*', help=f'notebooks to run (default: nbs/{PATTERN})')
    p.add_argument('--check', action='store_true', help='execute nothing; check the saved outputs only')
    p.add_argument('--timeout', type=int, default=900, help='seconds allowed per notebook')
    p.add_argument('--slowest', type=int, default=0, help='also print the wall time of the N slowest cells of each notebook')
    a = p.parse_args(argv)
    paths = tutorials(a.notebooks)
    if not paths: sys.exit(f'no notebooks found (nbs/{PATTERN})')
    ok = True
    for path in paths:
        if not a.check:
            took = run(path, a.timeout, a.slowest)
            print(f'{path.name}: executed in {took:.1f} s wall')
        ok &= check(path)
    if not ok: sys.exit('some saved outputs are wrong (above): fix the notebook and run tools/run_tutorials.py again')
    print(f'{len(paths)} notebook(s) OK')

if __name__ == '__main__': main()
