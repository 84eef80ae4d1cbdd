#!/usr/bin/env bash
# Gathers what the device kit (tests/gpu/device_check.sh) needs on a GPU machine that has the
# NVIDIA driver, nvcc's CUDA libraries and PyTorch but no Qt, no oneDNN and no network: the GPU
# test executables and attnscope-cli from a CUDA build, and every shared library they load that
# such a machine lacks (oneDNN, Qt Core/Gui/Test and their dependencies, libgomp, libstdc++),
# stripped and packed as one xz tarball in the ignored folder .gpu-kit/ (at most 64 MiB: what
# travels with a device call). glibc, the driver (libcuda) and cuBLAS are the device's own.
#
#   bash tests/gpu/make_bundle.sh [BUILD_DIR]      (default: build; needs a CUDA build)
#
# Prints the bundle's size. Exit 2 when the build is missing or has no CUDA backend.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
kit=$root/.gpu-kit
bins=(tests/test_backend_ops tests/test_cuda_parity tests/test_cuda_models tests/test_cuda_train
      app/cli/attnscope-cli)
limit=$((64 * 1024 * 1024))

[ -x "$build/tests/test_backend_ops" ] && ldd "$build/tests/test_backend_ops" | grep -q libcudart || {
  echo "make_bundle: $build is not a CUDA build (configure where nvcc is on the PATH and build first)" >&2
  exit 2
}
for b in "${bins[@]}"; do
  [ -x "$build/$b" ] || { echo "make_bundle: $build/$b is missing: build first (cmake --build $build)" >&2; exit 2; }
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/kit/bin" "$stage/kit/lib"
for b in "${bins[@]}"; do
  cp "$build/$b" "$stage/kit/bin/"
  strip --strip-unneeded "$stage/kit/bin/$(basename "$b")"
done
# Libraries the executables load, less what the device machine provides itself: glibc's own
# (libc, libm, libdl, libpthread, librt, the loader), the driver (libcuda) and the CUDA toolkit's
# cuBLAS/cuBLASLt (hundreds of MiB, there with nvcc). cudart comes along: it is small and must
# match the build's toolkit.
for b in "$stage"/kit/bin/*; do ldd "$b"; done | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|ld-linux-x86-64|libcuda|libcublas|libcublasLt)\.so' |
  while read -r lib; do
    cp -L "$lib" "$stage/kit/lib/"
  done
strip --strip-unneeded "$stage"/kit/lib/*.so* 2>/dev/null || true
git -C "$root" rev-parse HEAD >"$stage/kit/COMMIT" 2>/dev/null || echo unknown >"$stage/kit/COMMIT"
mkdir -p "$kit"
tar -C "$stage" -cf - kit | xz -6 -T2 >"$kit/kit.tar.xz.part"
mv "$kit/kit.tar.xz.part" "$kit/kit.tar.xz"
size=$(stat -c %s "$kit/kit.tar.xz")
awk -v f="$kit/kit.tar.xz" -v s="$size" -v b="$(ls "$stage/kit/bin" | wc -l)" \
  -v l="$(ls "$stage/kit/lib" | wc -l)" \
  'BEGIN { printf "bundle: %s, %.1f MiB (%d executables, %d libraries; limit 64 MiB)\n", f, s / 1048576, b, l }'
[ "$size" -le "$limit" ] || { echo "make_bundle: the bundle is over 64 MiB" >&2; exit 1; }
