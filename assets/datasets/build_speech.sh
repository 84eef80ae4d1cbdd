#!/bin/bash
# Builds the speech data set: espeak-ng reading generated English sentences in varied voices,
# with SOURCES.tsv. Usage: build_speech.sh OUTDIR RATE   (writes OUTDIR/train/, OUTDIR/unseen/,
# OUTDIR/SOURCES.tsv). datasets.py checks the Debian packages first and names any missing.
exec python3 "$(dirname "$0")/datasets.py" speech "$@"
