#!/usr/bin/env bash
# fastcf as a user gets it from `pip install fastcf` (Colab installs a wheel, not an editable checkout):
# build the wheel, install it into a fresh virtual environment outside the source tree, and from there run
# `fastcf --help`, `fastcf demo --small` and README.md's notebook flow exactly as README.md shows it.
# Offline and fast: the wheel is built without build isolation, the venv reuses the system's fastai/torch
# (--system-site-packages) and the wheel is installed with --no-deps.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/fastcf-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
unset PYTHONPATH                       # nothing may point back into the checkout
t0=$(date +%s)
lap() { printf '  %-40s %4ss\n' "$1" "$(( $(date +%s) - t0 ))"; }

# 1. the wheel, built from a copy of the files git would commit (a build leaves the checkout untouched)
mkdir -p "$work/src"
(cd "$root" && git ls-files --cached --others --exclude-standard -z) | while IFS= read -r -d '' f; do
  if [ -f "$root/$f" ]; then mkdir -p "$work/src/$(dirname "$f")"; cp -p "$root/$f" "$work/src/$f"; fi
done
python -m pip wheel --no-deps --no-build-isolation -q -w "$work/dist" "$work/src" >/dev/null
wheel="$(ls "$work"/dist/fastcf-*.whl)"
python - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
licence = [n for n in names if n.endswith('.dist-info/licenses/LICENSE')]
if not licence: sys.exit(f"ERROR: no LICENSE in {sys.argv[1]}")
if 'Apache License' not in zipfile.ZipFile(sys.argv[1]).read(licence[0]).decode(): sys.exit("ERROR: the wheel's LICENSE is not Apache-2.0")
print(f"  {sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files, {licence[0]}")
EOF
lap "wheel built"

# 2. a fresh venv; fastai, torch, numpy, pandas come from the system site, fastcf only from the wheel
python -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install -q --no-deps --no-index "$wheel"
mkdir -p "$work/run" && cd "$work/run"      # outside the repository: '' on sys.path must not find ./fastcf
where="$("$work/venv/bin/python" -c 'import fastcf, fastcf.cli; print(fastcf.__file__); print(fastcf.cli.__file__)')"
case "$where" in
  "$work/venv/"*) echo "$where" | sed 's/^/  imported from /' ;;
  *) echo "ERROR: fastcf imported from outside the venv (an editable install shadows the wheel?):" >&2; echo "$where" >&2; exit 1 ;;
esac
if grep -v "^$work/venv/" <<<"$where" >/dev/null; then echo "ERROR: part of fastcf comes from outside the venv: $where" >&2; exit 1; fi
lap "installed into a fresh venv"

# 3. the command, from the venv's console script
"$work/venv/bin/fastcf" --help >/dev/null
"$work/venv/bin/fastcf" demo --small --out "$work/run/fastcf-demo" > demo.log
test -s "$work/run/fastcf-demo/model.fcf" || { echo "ERROR: fastcf demo --small wrote no model.fcf" >&2; cat demo.log >&2; exit 1; }
grep -E '^(held-out RMSE|time per stage)' demo.log | sed 's/^/  /'
lap "fastcf --help, fastcf demo --small"

# 4. README.md's notebook flow, the python block under '## The notebook flow', as written
python - "$root/README.md" readme_flow.py <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
section = text.split('## The notebook flow', 1)[1].split('\n## ', 1)[0]
blocks = re.findall(r'```python\n(.*?)```', section, re.S)
if len(blocks) != 1: sys.exit(f"ERROR: expected one python block under '## The notebook flow' in README.md, found {len(blocks)}")
open(sys.argv[2], 'w').write(blocks[0] + "\nprint(f'README flow: {len(recs):,} recommendations for {recs.iloc[:, 0].nunique():,} users')\n")
EOF
flow_start=$(date +%s)
"$work/venv/bin/python" readme_flow.py > flow.log 2>&1 || { cat flow.log >&2; echo "ERROR: README's notebook flow failed" >&2; exit 1; }
tail -1 flow.log | sed 's/^/  /'
test -s model.fcf || { echo "ERROR: README's notebook flow wrote no model.fcf" >&2; exit 1; }
if grep -qi "warning" flow.log; then   # a newcomer running README's code sees no warning fastcf did not explain
  cat flow.log >&2; echo "ERROR: README's notebook flow printed a warning" >&2; exit 1
fi
echo "  README notebook flow: $(( $(date +%s) - flow_start ))s"
lap "README notebook flow"
