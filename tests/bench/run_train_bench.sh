#!/bin/bash
# Training throughput of attnscope against PyTorch on the same dense model, weights and batches,
# in one run: each configuration alternates ours / torch REPEATS times (the spread is the noise)
# and the table gives tokens/s, wall and CPU, with the ratio ours / torch.
#
# Usage: tests/bench/run_train_bench.sh [path/to/attnscope-cli]
#   env: PY (the python3 whose torch is the peer; default /usr/bin/python3; the peer a user picks
#        today is torch 2.x from PyPI, e.g. PY=venv/bin/python after `pip install torch`: it then
#        uses F.scaled_dot_product_attention), THREADS (1), REPEATS (2),
#        TORCH_REFERENCE_BLAS (1: one extra torch run as Debian ships it; Debian's torch only)
#
# Fairness: Debian's python3-torch (1.13) links the reference BLAS (libblas.so.3, about 4 GFLOP/s), so
# torch is run with a 6-line sgemm_ preloaded that forwards to oneDNN's dnnl_sgemm, the GEMM our
# engine calls: both sides then run the same matrix products. Both run with the same glibc
# malloc settings (large blocks kept, not unmapped each step; otherwise torch spends much of
# each step in page faults for its (B, H, N, N) attention tensors).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLI=${1:-$ROOT/build/app/cli/attnscope-cli}
PY=${PY:-/usr/bin/python3}
THREADS=${THREADS:-1}
REPEATS=${REPEATS:-2}
TORCH_REFERENCE_BLAS=${TORCH_REFERENCE_BLAS:-1}
[ -x "$CLI" ] || { echo "no attnscope-cli at $CLI (build it, or pass its path)" >&2; exit 2; }
$PY -c 'import torch' 2>/dev/null || { echo "$PY cannot import torch (apt install python3-torch)" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Column-major sgemm_ (Fortran BLAS) as row-major dnnl_sgemm: C^T = B^T A^T.
cc -O2 -shared -fPIC -x c - -o "$WORK/libsgemm_dnnl.so" -ldnnl <<'EOF'
#include <oneapi/dnnl/dnnl.h>
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc) {
  dnnl_sgemm(*tb, *ta, *n, *m, *k, *alpha, b, *ldb, a, *lda, *beta, c, *ldc);
}
EOF
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736
export OMP_NUM_THREADS=$THREADS

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc --all) cores" \
  "($(lscpu | sed -n 's/^Flags:.*\(avx512f\).*/\1/p' | head -1)), load $(cut -d' ' -f1-3 /proc/loadavg)"
TORCH_VERSION=$($PY -c 'import torch; print(torch.__version__)')
# The sgemm_ shim only for Debian's 1.x build (reference BLAS); torch 2.x from PyPI brings its own
# BLAS and runs as a user runs it.
PRELOAD=""
case $TORCH_VERSION in 1.*) PRELOAD="$WORK/libsgemm_dnnl.so" ;; *) TORCH_REFERENCE_BLAS=0 ;; esac
echo "torch: $TORCH_VERSION, threads: $THREADS"
echo

# name | cli flags (the torch side takes its config from the model file) | steps | warm-up
CONFIGS=(
  "image|--modality image:32x32x3 --layers 4 --dim 128 --heads 4 --batch 4|6|1"
  "text|--modality text:1024 --layers 4 --dim 128 --heads 4 --batch 4|10|2"
)
RESULTS=$WORK/results.jsonl
for c in "${CONFIGS[@]}"; do
  IFS='|' read -r name flags steps warm <<<"$c"
  batch=$(sed -n 's/.*--batch \([0-9]*\).*/\1/p' <<<"$flags")
  for r in $(seq 1 "$REPEATS"); do
    echo "== $name, run $r: attnscope" >&2
    # shellcheck disable=SC2086
    "$CLI" bench train $flags --threads "$THREADS" --steps "$steps" --warmup-steps "$warm" \
      --init-out "$WORK/$name.safetensors" --batch-out "$WORK/$name.bin" |
      sed -n "s/^BENCH_TRAIN \(.*\)/{\"config\":\"$name\",\"run\":$r,\"side\":\"ours\",\"rec\":\1}/p" >>"$RESULTS"
    echo "== $name, run $r: torch" >&2
    LD_PRELOAD="$PRELOAD" $PY "$ROOT/tests/bench/train_torch.py" \
      --weights "$WORK/$name.safetensors" --batch-file "$WORK/$name.bin" --batch "$batch" \
      --threads "$THREADS" --steps "$steps" --warmup-steps "$warm" |
      sed -n "s/^BENCH_TRAIN \(.*\)/{\"config\":\"$name\",\"run\":$r,\"side\":\"torch\",\"rec\":\1}/p" >>"$RESULTS"
  done
  if [ "$name" = text ] && [ "$TORCH_REFERENCE_BLAS" = 1 ]; then
    echo "== $name: torch with Debian's reference BLAS" >&2
    $PY "$ROOT/tests/bench/train_torch.py" --weights "$WORK/$name.safetensors" \
      --batch-file "$WORK/$name.bin" --batch "$batch" --threads "$THREADS" --steps 2 \
      --warmup-steps 1 |
      sed -n "s/^BENCH_TRAIN \(.*\)/{\"config\":\"$name\",\"run\":0,\"side\":\"torch-refblas\",\"rec\":\1}/p" >>"$RESULTS"
  fi
done

$PY - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cfg = {}
for r in rows:
    cfg.setdefault(r["config"], {}).setdefault(r["run"], {})[r["side"]] = r["rec"]
print("| config | run | attnscope tok/s | torch tok/s | ratio | attnscope tok/CPU-s | torch tok/CPU-s "
      "| CPU ratio | attnscope / torch peak RSS | losses (bits, steps 1-3) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, runs in cfg.items():
    for run, s in sorted(runs.items()):
        if "ours" not in s or "torch" not in s:
            continue
        o, t = s["ours"], s["torch"]
        desc = f'{o["modality"]} (N={o["seq_len"]}), L={o["layers"]} D={o["dim"]} H={o["heads"]} B={o["batch"]}'
        tok = o["batch"] * o["seq_len"]
        oc, tc = tok / (o["cpu_ms_per_step"] / 1e3), tok / (t["cpu_ms_per_step"] / 1e3)
        same = all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(o["losses_bits"], t["losses_bits"]))
        losses = "/".join(f"{v:.5f}" for v in o["losses_bits"])
        print(f'| {desc} | {run} | {o["tokens_per_s"]:.0f} | {t["tokens_per_s"]:.0f} | '
              f'{o["tokens_per_s"] / t["tokens_per_s"]:.2f} | {oc:.0f} | {tc:.0f} | {oc / tc:.2f} | '
              f'{o["peak_rss_mib"]:.0f} / {t["peak_rss_mib"]:.0f} MiB | '
              f'{losses} {"= torch" if same else "DIFFER from torch " + str(t["losses_bits"])} |')
    ref = runs.get(0, {}).get("torch-refblas")
    if ref:
        tok = ref["batch"] * ref["seq_len"]
        print(f'| {name}: torch with Debian\'s reference BLAS | - | - | {ref["tokens_per_s"]:.0f} | '
              f'- | - | {tok / (ref["cpu_ms_per_step"] / 1e3):.0f} | - | - | - |')
EOF
