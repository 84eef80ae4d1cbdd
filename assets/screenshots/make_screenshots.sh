#!/usr/bin/env bash
# Remakes the README's screenshots with `attnscope --autorun --screenshot` under Xvfb, on
# freshly initialised 32x32x3 models (random weights until trained models are bundled).
# Run from the repository root after building: bash assets/screenshots/make_screenshots.sh
set -euo pipefail
cli=build/app/cli/attnscope-cli
app=build/app/attnscope
out=assets/screenshots
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompt=assets/prompts/shapes-32.png
common=(--modality image:32x32x3 --layers 4 --dim 128 --heads 4 --seed 1 --logits random)
$cli init --family dense "${common[@]}" --out "$tmp/dense.safetensors"
$cli init --family sparse --pattern strided "${common[@]}" --out "$tmp/sparse.safetensors"
$cli init --family reformer "${common[@]}" --out "$tmp/reformer.safetensors"
$cli init --family dense --modality audio:8000:1 --layers 2 --dim 64 --heads 4 --seed 1 \
  --logits random --out "$tmp/audio.safetensors"
python3 - "$tmp/tone.wav" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * f * t / 8000)))
                           for f in (440, 660) for t in range(4000)))
PY
shot() {  # shot NAME MODEL VIEW [extra args]
  local name=$1 model=$2 view=$3
  shift 3
  QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
    "$app" --model "$model" --seed 1 --autorun --view "$view" --screenshot "$out/$name.png" "$@"
  echo "wrote $out/$name.png"
}
shot canvas "$tmp/dense.safetensors" canvas --prompt "$prompt" --keep-rows 16
shot attention "$tmp/sparse.safetensors" attention --prompt "$prompt" --keep-rows 16
shot pattern "$tmp/sparse.safetensors" pattern --prompt "$prompt" --keep-rows 16
shot lsh "$tmp/reformer.safetensors" lsh --prompt "$prompt" --keep-rows 16
shot memory "$tmp/dense.safetensors" memory --prompt "$prompt" --keep-rows 16
shot audio "$tmp/audio.safetensors" audio --prompt "$tmp/tone.wav" --keep-seconds 0.5
shot compare "$tmp/dense.safetensors" compare --prompt "$prompt" --keep-rows 16 \
  --compare "$tmp/sparse.safetensors"
