#!/bin/bash
# Builds the icon data set: seven Debian icon themes rasterised to 32x32 RGB on white for
# training, four more held out whole, with SOURCES.tsv. Usage: build_icons.sh OUTDIR
# (writes OUTDIR/train/, OUTDIR/unseen/, OUTDIR/unseen-themes/THEME/, OUTDIR/SOURCES.tsv).
# datasets.py checks the Debian packages first and names any missing.
exec python3 "$(dirname "$0")/datasets.py" icons "$@"
