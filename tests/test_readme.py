"README's generated parts agree with the code."
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'tools' / 'module_map.py'

def check(*files:Path):
    return subprocess.run([sys.executable, str(SCRIPT), '--check', '--readme', *map(str, files)], capture_output=True, text=True)

def test_module_table_is_current():
    "The module tables of README and the docs' home page (nbs/index.ipynb) are `tools/module_map.py`'s output for the package"
    out = check(ROOT / 'README.md', ROOT / 'nbs' / 'index.ipynb')
    assert out.returncode == 0, out.stderr

def test_module_table_check_fails_when_stale(tmp_path):
    "The check is not vacuous: a README whose table lost a row, or whose line count is off, is refused"
    lines = (ROOT / 'README.md').read_text().split('\n')
    start = next(i for i, line in enumerate(lines) if line.startswith('<!-- module-map:start'))
    row = next(i for i in range(start, len(lines)) if lines[i].startswith('| `'))
    for stale in (lines[:row] + lines[row + 1:], lines[:row] + [lines[row].rsplit('|', 2)[0] + '| 1 |'] + lines[row + 1:]):
        (tmp_path / 'README.md').write_text('\n'.join(stale))
        out = check(tmp_path / 'README.md')
        assert out.returncode == 1 and 'stale' in out.stderr, out

READMEPY = ROOT / 'tools' / 'readme.py'

def test_readme_is_generated_from_index():
    "README.md is exactly `tools/readme.py`'s rendering of nbs/index.ipynb, so the two cannot drift"
    out = subprocess.run([sys.executable, str(READMEPY), '--check'], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

def test_readme_check_fails_when_they_drift(tmp_path):
    "The check is not vacuous: a README with one sentence edited by hand is refused"
    text = (ROOT / 'README.md').read_text()
    (tmp_path / 'README.md').write_text(text.replace('## Why', '## Why fastcf', 1))
    out = subprocess.run([sys.executable, str(READMEPY), '--check', '--readme', str(tmp_path / 'README.md')], capture_output=True, text=True)
    assert out.returncode == 1 and 'stale' in out.stderr, out
