#!/usr/bin/env bash
# Render check for the tutorials (by hand, not in CI): convert each notebook to HTML with its saved outputs, as a reader
# sees it, and take a headless-browser screenshot of the page, so that a person can LOOK at what renders.
#
#   tools/render_check.sh                                  # every nbs/8?_tutorial.*.ipynb
#   tools/render_check.sh nbs/83_tutorial.rules.ipynb ...  # just these
#   RENDER_OUT=/tmp/render HEIGHT=30000 tools/render_check.sh   # output folder (default: $TMPDIR/fastcf-render), window height
#
# Writes <out>/<name>.html, the screenshot <out>/<name>.png (1200 px wide, the window HEIGHT px tall, default 20000, its
# blank bottom cut off) and the same page in 1200 x 2400 tiles, <out>/<name>.1.png, .2.png, ..., for each notebook. Needs nbconvert (pip install nbconvert) and Chromium (Debian: apt-get install chromium); it installs neither
# and says which is missing. Quarto renders the published docs; nbconvert is close enough to spot a missing output, a
# red warning box, a table too wide, or a plot too small to read.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${RENDER_OUT:-${TMPDIR:-/tmp}/fastcf-render}"
mkdir -p "$out"
python -c "import nbconvert" 2>/dev/null || { echo "ERROR: nbconvert is missing: pip install nbconvert" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "ERROR: no headless browser: apt-get install chromium" >&2; exit 1; }
if [ "$#" -gt 0 ]; then notebooks=("$@"); else notebooks=(nbs/8?_tutorial.*.ipynb); fi
for nb in "${notebooks[@]}"; do
  name=$(basename "$nb" .ipynb)
  rm -f "$out/$name".[0-9]*.png
  jupyter nbconvert --to html --output-dir "$out" --log-level WARN "$nb"
  height="${HEIGHT:-20000}"
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$out/$name.png" \
    --window-size=1200,"$height" "file://$(realpath "$out/$name.html")" 2>/dev/null
  # cut the blank bottom off, and the page into 1200 x 2400 tiles an image viewer shows at full size
  python - "$out/$name.png" "$height" <<'PY'
import sys
from PIL import Image, ImageChops
path = sys.argv[1]
im = Image.open(path).convert('RGB')
box = ImageChops.difference(im, Image.new('RGB', im.size, (255, 255, 255))).getbbox()
im = im.crop((0, 0, im.width, box[3] + 20 if box else im.height))
im.save(path)
for n, top in enumerate(range(0, im.height, 2400), 1):
    im.crop((0, top, im.width, min(top + 2400, im.height))).save(path[:-4] + f'.{n}.png')
print(f"  {im.height} px tall, {n} tile(s)" + ("  (the page may be longer: raise HEIGHT)" if im.height >= int(sys.argv[2] if len(sys.argv) > 2 else 1e9) - 40 else ''))
PY
  echo "$nb -> $out/$name.html, $out/$name.png and its tiles"
done
