"""README's module table, generated from the code: each module of `fastcf` (subpackages included), the first sentence
of its docstring (the notebook's summary line), and its line count.

    python tools/module_map.py            # print the table
    python tools/module_map.py --write    # rewrite the table between the markers of README.md and nbs/index.ipynb
    python tools/module_map.py --check    # exit 1 if either table differs from the code (tests/test_readme.py runs this)
"""
import argparse, ast, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = '<!-- module-map:start (tools/module_map.py --write) -->', '<!-- module-map:end -->'

def summary(doc:str) -> str:
    "The docstring's first sentence, on one line, without nbdev's `Docs:` link"
    text = ' '.join((doc or '').split('\n\n')[0].split())
    m = re.match(r'(.+?[.!?])(\s|$)', text)
    first = m.group(1) if m else text
    head = first.split(': ', 1)[0]
    if len(first) > 110 and len(head) >= 12: first = head    # a long sentence: its part before the colon
    return first.replace('|', '\\|')

def modules(pkg:Path=ROOT / 'fastcf'):
    "(dotted name, summary, lines) for every public module of the package, in path order"
    for path in sorted(pkg.rglob('*.py')):
        rel = path.relative_to(pkg.parent).with_suffix('')
        if any(part.startswith('_') for part in rel.parts[1:]): continue   # __init__, __main__, _modidx
        src = path.read_text()
        yield '.'.join(rel.parts[1:]), summary(ast.get_docstring(ast.parse(src))), len(src.splitlines())

def table() -> str:
    rows = ['| module | what it holds | lines |', '|---|---|---:|']
    rows += [f'| `{name}` | {text} | {lines} |' for name, text, lines in modules()]
    return '\n'.join(rows)

def with_table(readme:str) -> str:
    "README's text with the table between the markers replaced by the code's"
    if START not in readme or END not in readme: raise SystemExit(f"README.md lacks the markers {START!r} … {END!r}")
    head, rest = readme.split(START, 1)
    return head + START + '\n' + table() + '\n' + END + rest.split(END, 1)[1]

def rewritten(path:Path) -> tuple:
    "(old text, new text) of `path`: a Markdown file, or a notebook whose one markdown cell holds the markers"
    old = path.read_text()
    if path.suffix != '.ipynb': return old, with_table(old)
    nb = json.loads(old)
    cells = [c for c in nb['cells'] if c['cell_type'] == 'markdown' and START in ''.join(c['source'])]
    if len(cells) != 1: raise SystemExit(f"{path} needs exactly one markdown cell with the marker {START!r}, found {len(cells)}")
    cells[0]['source'] = with_table(''.join(cells[0]['source'])).splitlines(True)
    return old, json.dumps(nb, indent=1, ensure_ascii=False) + '\n'

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument('--write', action='store_true', help="rewrite README.md's table")
    g.add_argument('--check', action='store_true', help="exit 1 if README.md's table is stale")
    p.add_argument('--readme', type=Path, nargs='*', default=[ROOT / 'README.md', ROOT / 'nbs' / 'index.ipynb'],
                   help='the files whose table to write or check')
    args = p.parse_args()
    if not (args.write or args.check): print(table()); sys.exit()
    for path in args.readme:
        old, new = rewritten(path)
        if args.write: path.write_text(new)
        elif new != old: sys.exit(f"{path.name}'s module table is stale: run python tools/module_map.py --write")
