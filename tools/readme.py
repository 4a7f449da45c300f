"""README.md is generated from the docs' home page, nbs/index.ipynb, so the two cannot drift: edit the notebook, then

    python tools/readme.py            # rewrite README.md from nbs/index.ipynb
    python tools/readme.py --check    # exit 1 if README.md is not what the notebook gives (tests/test_readme.py runs this)

Markdown cells are copied as they are; code cells become ```python blocks, without their `#|` directives; cells marked
`#| hide` (the page's tests) and all outputs are left out, as nbdev's own README export does.
"""
import argparse, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def readme_text(index:Path=ROOT / 'nbs' / 'index.ipynb') -> str:
    "README.md's text, generated from the notebook `index`"
    parts = []
    for cell in json.loads(index.read_text())['cells']:
        src = ''.join(cell['source']).strip('\n')
        lines = src.splitlines()
        if cell['cell_type'] == 'markdown': parts.append(src)
        elif cell['cell_type'] == 'code' and not any(l.replace(' ', '') in ('#|hide', '#|hide:true') for l in lines if l.startswith('#|')):
            code = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
            if code: parts.append(f"```python\n{code}\n```")
    return '\n\n'.join(p for p in parts if p) + '\n'

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--check', action='store_true', help='exit 1 if README differs from the notebook')
    p.add_argument('--index', type=Path, default=ROOT / 'nbs' / 'index.ipynb')
    p.add_argument('--readme', type=Path, default=ROOT / 'README.md')
    args = p.parse_args(argv)
    text = readme_text(args.index)
    if args.check:
        if args.readme.read_text() != text:
            print(f"{args.readme} is stale: it differs from {args.index}; run python tools/readme.py", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(text)
    return 0

if __name__ == '__main__': sys.exit(main())
