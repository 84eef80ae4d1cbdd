#!/bin/bash
# Dense causal attention forward, attnscope against PyTorch's scaled_dot_product_attention, in
# one run: REPEATS alternating rounds of `attnscope-cli bench attention --json` and
# tests/bench/attention_torch.py (4 heads, head width 64, N = 1024, 4096, 16384, random
# float32 inputs, best of repeated runs), then a table of milliseconds and the ratio
# torch ms / attnscope ms (above 1: attnscope is faster).
#
# Usage: tests/bench/run_attention_bench.sh [path/to/attnscope-cli]
#   env: PY (a python3 with torch 2.x, e.g. a venv with `pip install torch`; default python3),
#        THREADS (1), REPEATS (2)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLI=${1:-$ROOT/build/app/cli/attnscope-cli}
PY=${PY:-python3}
THREADS=${THREADS:-1}
REPEATS=${REPEATS:-2}
[ -x "$CLI" ] || { echo "no attnscope-cli at $CLI (build it, or pass its path)" >&2; exit 2; }
$PY -c 'import torch.nn.functional as F; F.scaled_dot_product_attention' 2>/dev/null || {
  echo "$PY has no torch with scaled_dot_product_attention (torch >= 2.0: pip install torch)" >&2
  exit 2
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=passive
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc --all) cores," \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "torch: $($PY -c 'import torch; print(torch.__version__)'), threads: $THREADS"
echo
for r in $(seq 1 "$REPEATS"); do
  echo "== round $r: attnscope" >&2
  "$CLI" bench attention --json >"$WORK/ours.$r.json"
  echo "== round $r: torch" >&2
  $PY "$ROOT/tests/bench/attention_torch.py" --threads "$THREADS" |
    sed -n 's/^BENCH_ATTN //p' >"$WORK/torch.$r.jsonl"
done

$PY - "$WORK" "$REPEATS" <<'EOF'
import json, sys
work, repeats = sys.argv[1], int(sys.argv[2])
print("| N | round | attnscope dense ms | torch SDPA ms | torch ms / attnscope ms |")
print("|---|---|---|---|---|")
for n in (1024, 4096, 16384):
    for r in range(1, repeats + 1):
        ours = [x for x in json.load(open(f"{work}/ours.{r}.json")) if x["kind"] == "dense" and x["n"] == n]
        theirs = [json.loads(l) for l in open(f"{work}/torch.{r}.jsonl")]
        theirs = [x for x in theirs if x["kind"] == "torch-sdpa" and x["n"] == n]
        if not ours or not theirs:
            continue
        o, t = ours[0]["ms"], theirs[0]["ms"]
        print(f"| {n} | {r} | {o:.2f} | {t:.2f} | {t / o:.2f} |")
EOF
