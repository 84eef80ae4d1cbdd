#!/bin/bash
# Builds the icon data set: Debian's Papirus (SVG) and Oxygen (PNG) icons rasterised to 32x32 RGB on white,
# with SOURCES.tsv. Usage: build_icons.sh OUTDIR   (writes OUTDIR/train/, OUTDIR/unseen/,
# OUTDIR/SOURCES.tsv). datasets.py checks the Debian packages first and names any missing.
exec python3 "$(dirname "$0")/datasets.py" icons "$@"
