#!/bin/bash
# Builds the speech data set: espeak-ng reading generated English sentences in varied voices,
# speeds and pitches, converted by sox to mono 16-bit WAV at RATE, with SOURCES.tsv.
# Usage: build_speech.sh OUTDIR RATE   (writes OUTDIR/train/, OUTDIR/unseen/, OUTDIR/SOURCES.tsv)
set -euo pipefail
if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 OUTDIR RATE   (RATE in Hz, e.g. 8000)" >&2
  exit 2
fi
missing=()
for pkg in espeak-ng sox; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing Debian packages; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
mkdir -p "$1"
exec python3 "$(dirname "$0")/datasets.py" speech "$1" "$2"
