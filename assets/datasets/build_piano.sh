#!/bin/bash
# Builds the piano data set: generated pieces (a melody over chords) played by FluidSynth,
# with SOURCES.tsv. Usage: build_piano.sh OUTDIR RATE   (writes OUTDIR/train/, OUTDIR/unseen/,
# OUTDIR/SOURCES.tsv). datasets.py checks the Debian packages first and names any missing.
exec python3 "$(dirname "$0")/datasets.py" piano "$@"
