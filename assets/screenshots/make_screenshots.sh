#!/usr/bin/env bash
# Remakes the README's screenshots with `attnscope --autorun --screenshot` under Xvfb, on the
# bundled trained models (assets/models) and prompts the models never saw in training.
# Run from the repository root after building: bash assets/screenshots/make_screenshots.sh
set -euo pipefail
app=${APP:-build/app/attnscope}
out=assets/screenshots
models=assets/models
icon=assets/prompts/icons/papirus-places-folder-blue-games.png
icon2=assets/prompts/icons/papirus-mimetypes-text-css.png
shot() {  # shot NAME MODEL VIEW [extra args]; ONLY="name ..." remakes those alone
  local name=$1 model=$2 view=$3
  shift 3
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
    "$app" --model "$model" --seed 1 --autorun --view "$view" --screenshot "$out/$name.png" "$@"
  echo "wrote $out/$name.png"
}
shot canvas "$models/icons.safetensors" canvas --prompt "$icon" --keep-rows 16 --samples 4 \
  --temperature 0.8 --top-p 0.9
shot canvas-css "$models/icons.safetensors" canvas --prompt "$icon2" --keep-rows 16 --samples 4 \
  --temperature 0.8 --top-p 0.9
shot attention "$models/icons-sparse.safetensors" attention --prompt "$icon" --keep-rows 16
shot pattern "$models/icons-sparse.safetensors" pattern --prompt "$icon" --keep-rows 16
shot lsh "$models/icons-reformer.safetensors" lsh --prompt "$icon" --keep-rows 16
shot step "$models/icons-sparse.safetensors" step --prompt "$icon" --keep-rows 16
shot memory "$models/icons-dense.safetensors" memory --prompt "$icon" --keep-rows 16
shot audio "$models/speech-sparse.safetensors" audio --prompt assets/prompts/speech-unseen.wav \
  --keep-seconds 0.5 --temperature 1 --top-p 1
shot audio-ocarina "$models/ocarina-sparse.safetensors" audio \
  --prompt assets/prompts/ocarina-unseen.wav --keep-seconds 0.5 --temperature 1 --top-p 1
shot attention-audio "$models/ocarina-sparse.safetensors" attention \
  --prompt assets/prompts/ocarina-unseen.wav --keep-seconds 0.5 --temperature 1 --top-p 1
# The Compare grid: the default model and every family model on two icons of unseen themes,
# each scored on the real images, with the surprise overlay (Perceiver AR's decode, about 80 s
# a completion here, is most of the time). --export also writes the tab's own picture of the
# whole table and grid (compare-grid.png) and its figures (compare-grid.csv).
u=assets/prompts/unseen-themes
shot compare "$models/icons.safetensors" compare \
  --prompt $u/tango-devices-video-display.png --keep-rows 16 \
  --compare-prompt $u/adwaita-places-network-server.png \
  --compare "$models/icons-sparse.safetensors" --compare "$models/icons-dense.safetensors" \
  --compare "$models/icons-reformer.safetensors" --compare "$models/icons-perceiver-ar.safetensors" \
  --compare "$models/icons-hourglass.safetensors" --temperature 0.8 --top-p 0.9 \
  --export "$out/compare-grid.png"
