#!/bin/sh
# CTest test_safetensors_reference: re-derives reference.tsv's verdicts from the Python
# safetensors package and fails on any difference. Skipped (exit 77, with the reason) where the
# package or Python is missing: `pip install safetensors`, or set ATTNSCOPE_PYTHON to a Python
# that has it.
cd "$(dirname "$0")/../../.." || exit 1
py=${ATTNSCOPE_PYTHON:-python3}
command -v "$py" >/dev/null 2>&1 || { echo "SKIP: no $py"; exit 77; }
exec "$py" tests/data/safetensors/reference_verdicts.py . tests/data/safetensors \
  tests/data/malformed assets/models --check
