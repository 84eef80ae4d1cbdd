#!/bin/bash
# Builds the melody data set: generated melodies (one note at a time, no chords) played by FluidSynth,
# with SOURCES.tsv. Usage: build_melody.sh OUTDIR RATE   (writes OUTDIR/train/, OUTDIR/unseen/,
# OUTDIR/SOURCES.tsv). datasets.py checks the Debian packages first and names any missing.
exec python3 "$(dirname "$0")/datasets.py" melody "$@"
