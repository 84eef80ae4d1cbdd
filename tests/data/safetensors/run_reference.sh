#!/bin/sh
# CTest test_safetensors_reference: re-derives reference.tsv's verdicts from the Python
# safetensors package and fails on any difference (test_safetensors asserts that our reader
# gives the recorded verdict on every file, so together they hold our reader to the library's).
#
#   sh run_reference.sh [PYDIR]
#
# Where the package (and numpy, which its numpy loader needs) cannot be imported, it is installed
# from PyPI into PYDIR (default build/python-reference), not into the system. Skipped (exit 77,
# with the reason) where Python is missing or PyPI cannot be reached. ATTNSCOPE_PYTHON picks
# the Python.
cd "$(dirname "$0")/../../.." || exit 1
py=${ATTNSCOPE_PYTHON:-python3}
dir=${1:-build/python-reference}
command -v "$py" >/dev/null 2>&1 || { echo "SKIP: no $py"; exit 77; }
export PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}"
if ! "$py" -c "import safetensors, numpy" >/dev/null 2>&1; then
  echo "installing safetensors and numpy from PyPI into $dir"
  if ! "$py" -m pip --version >/dev/null 2>&1; then
    echo "SKIP: $py has no pip, and the safetensors package is not installed"
    exit 77
  fi
  # --timeout/--retries: an offline machine gives up in seconds instead of hanging the test.
  mkdir -p "$dir" || exit 1
  if ! timeout 100 "$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
      --timeout 10 --retries 1 --target "$dir" safetensors numpy >"$dir.log" 2>&1; then
    echo "SKIP: could not install safetensors from PyPI (offline?); pip said:"
    grep -v WARNING "$dir.log" | tail -3
    exit 77
  fi
fi
exec "$py" tests/data/safetensors/reference_verdicts.py . tests/data/safetensors \
  tests/data/malformed assets/models --check
