#!/bin/bash
# Builds the icon data set: Debian's Papirus (SVG) and Oxygen (PNG) apps/places/mimetypes
# icons rasterised to 32x32 RGB PNGs on white, deduplicated, with SOURCES.tsv.
# Usage: build_icons.sh OUTDIR   (writes OUTDIR/train/, OUTDIR/unseen/, OUTDIR/SOURCES.tsv)
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
missing=()
for pkg in papirus-icon-theme oxygen-icon-theme librsvg2-bin; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing Debian packages; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
mkdir -p "$1"
exec python3 "$(dirname "$0")/datasets.py" icons "$1"
