#!/usr/bin/env bash
# Times cellgpu's WebGPU steps against the CPU on a real GPU (NVIDIA through Dawn's Vulkan
# backend), offline, in under 8 minutes: checks the Vulkan loader and driver, builds, prints the
# adapter, times normalize + HVG + PCA (bench/steps.ts) on pbmc3k and on simulated 200k and 1M
# cells (4,000 genes, 2,000 HVGs) with the device ceiling (copy GB/s, f32 matmul GFLOP/s), then
# the graph half (bench/graphDevice.ts: kNN k=15 on 50-d points — IVF and exact, connectivities,
# Leiden, SNN + Louvain, UMAP) at 50k cells with the CPU twins and at 200k and 1M on the device
# alone, then runs the GPU parity tests in the time left. Installs nothing from the network.
#
#   bench/gpu-device.sh            full run (real GPU); results in $OUT, else bench/results
#   bench/gpu-device.sh --small    dry run (any adapter, lavapipe included): pbmc3k and 2k
#                                  simulated cells, the graph steps at 5k, only the ceiling
#                                  parity test
#   bench/gpu-device.sh --pack     here, before a device run: writes .devpack/ (node.xz and a
#                                  node_modules.tar.xz without other platforms' binaries and
#                                  dev-only packages) small enough to carry (< 64 MiB with the tree)
#
# Every stage has its own time limit (build 40 s, adapter 20 s, steps 130 s, graph 50k 65 s,
# graph 200k 55 s, graph 1M 105 s = 415 s; parity gets what is left of 470 s, at most 150 s, and
# is skipped under 30 s), so one slow stage does not lose the others' numbers; the graph stages
# also start no step in their last 10 s and rewrite their JSON after every step. The exact kNN
# at 200k runs only if the 50k run's exact time × 16 is within 30 s, at 1M only if the 200k
# run's × 25 is within 60 s (IVF is the pipeline's kNN above 50k cells).
#
# Needs: node ≥ 20 on PATH, or carried as .devpack/node (or .devpack/node.xz); node_modules
# carried, or .devpack/node_modules.tar.xz (webgpu, commander, h5wasm, apache-arrow; vitest for
# the parity stage, which is skipped with a message when vitest is absent); the reference
# outputs the GPU tests read in ../shared or .devpack/shared. If `ldconfig -p` has no libvulkan, the
# carried .gl/*.deb (libvulkan1 …) are unpacked into / (see bench/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."

SMALL=0
[ "${1:-}" = "--small" ] && SMALL=1
if [ "${1:-}" = "--pack" ]; then
  mkdir -p .devpack
  grep -qx '/.devpack/' .git/info/exclude 2>/dev/null || echo '/.devpack/' >>.git/info/exclude
  xz -T0 -9 -c "$(command -v node)" >.devpack/node.xz
  XZ_OPT='-9 -T0' tar -cJf .devpack/node_modules.tar.xz --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
    --exclude='node_modules/webgpu/dist/linux-arm64' --exclude=node_modules/typescript --exclude=node_modules/scran.js \
    --exclude=node_modules/@types --exclude='node_modules/.cache' --exclude=node_modules/apache-arrow/src \
    --exclude='*.map' --exclude='*.d.ts' --exclude='*.d.mts' --exclude='*.d.cts' node_modules
  # the reference outputs the GPU tests read (../shared does not travel)
  SH="${CELLGPU_SHARED:-../shared}"
  # a fresh copy: cp -r into an existing folder would nest a second copy inside it
  rm -rf .devpack/shared
  for d in reference/pbmc3k/scanpy_like reference/kang2018_ctrl_5donors/scanpy_like reference/pbmc_small_seurat datasets/pbmc_small_seurat; do
    mkdir -p ".devpack/shared/$(dirname "$d")" && cp -r "$SH/$d" ".devpack/shared/$d"
  done
  du -sh .devpack/* && du -sh .devpack
  exit 0
fi
OUTDIR="${OUT:-bench/results}"
mkdir -p "$OUTDIR"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
LOG="$OUTDIR/gpu-device-$STAMP.log"
T0=$SECONDS
say() { echo "[gpu-device +$((SECONDS - T0))s] $*" | tee -a "$LOG"; }
# stage NAME SECONDS CMD…: runs CMD with a time limit, output to the log and the terminal.
stage() {
  local name=$1 limit=$2
  shift 2
  say "stage $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 124 ] && say "stage $name: TIMED OUT after ${limit}s"
  [ "$rc" -ne 0 ] && say "stage $name: exit $rc"
  return "$rc"
}

# --- Node: on PATH, else carried
if ! command -v node >/dev/null 2>&1; then
  if [ -f .devpack/node.xz ] && [ ! -x .devpack/node ]; then xz -dkc .devpack/node.xz >.devpack/node && chmod +x .devpack/node; fi
  [ -x .devpack/node ] && export PATH="$PWD/.devpack:$PATH"
fi
if [ ! -d node_modules ] && [ -f .devpack/node_modules.tar.xz ]; then say "unpacking .devpack/node_modules.tar.xz"; tar -xJf .devpack/node_modules.tar.xz; fi
command -v node >/dev/null 2>&1 || { say "no node on PATH and no .devpack/node: carry one (bench/README.md)"; exit 2; }
say "node $(node --version) at $(command -v node); $(nproc) cores; $(uname -m)"
[ -d node_modules/webgpu ] || { say "node_modules/webgpu missing: carry node_modules (bench/README.md)"; exit 2; }

# --- Vulkan loader and driver (a real GPU machine may lack the loader; never touch lavapipe setups)
if [ "$SMALL" = 0 ]; then
  if ! ldconfig -p | grep -q libvulkan; then
    if ls .gl/*.deb >/dev/null 2>&1; then
      say "no libvulkan: unpacking carried .gl/*.deb"
      for f in .gl/*.deb; do dpkg -x "$f" /; done
      ldconfig
    else
      say "no libvulkan and no carried .gl/*.deb: Dawn will find no Vulkan adapter"
    fi
  fi
  if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
      if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
    done
    say "VK_DRIVER_FILES=${VK_DRIVER_FILES:-<none found>}"
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$LOG"
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
# the GPU tests read reference outputs from ../shared; on a device machine they come in .devpack
if [ -z "${CELLGPU_SHARED:-}" ] && [ ! -d ../shared/reference ] && [ -d .devpack/shared/reference ]; then
  export CELLGPU_SHARED="$PWD/.devpack/shared"
fi

# --- build, adapter
stage build 40 node esbuild.config.mjs || exit 3
stage adapter 20 node dist/bench.js adapter || exit 4

# --- timings: normalize + HVG + PCA, CPU vs WebGPU
RESULT="$OUTDIR/gpu-steps-$STAMP.json"
if [ "$SMALL" = 1 ]; then
  stage steps 240 node --max-old-space-size=8192 dist/bench.js steps --dir datasets/pbmc3k --cells 2k --out "$RESULT"
else
  stage steps 130 node --max-old-space-size=65536 dist/bench.js steps --dir datasets/pbmc3k --cells 200k,1M --cpu-max-cells 200k --out "$RESULT"
fi
STEPS=$?

# --- timings: the graph half (kNN, connectivities, Leiden, SNN + Louvain, UMAP), device vs CPU
# graph SIZE LIMIT ARGS…: one size in its own process; steps start only up to 10 s before LIMIT.
GRAPH_FAILS=0
# A stage cut short leaves its table (every finished step) in the JSON: printed from there.
graph() {
  local size=$1 limit=$2 json="$OUTDIR/gpu-graph-$1-$STAMP.json"
  shift 2
  if ! stage "graph-$size" "$limit" node --max-old-space-size=65536 dist/bench.js graph --cells "$size" --deadline-s $((limit - 10)) --out "$json" "$@"; then
    GRAPH_FAILS=$((GRAPH_FAILS + 1))
    [ -f "$json" ] && node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).markdown ?? "")' "$json" | tee -a "$LOG"
  fi
}
if [ "$SMALL" = 1 ]; then
  graph 5k 240 --repeats 2 --profile
else
  # 50k: the CPU twins too (the CPU/device column); the exact kNN at 200k / 1M runs only if the
  # previous size's exact time × (n/n0)² is within --exact-max-s
  graph 50k 65 --cpu-max-cells 50k
  # 200k with --profile: device time per kernel (the 1M timings stay free of the timestamp reads)
  graph 200k 55 --repeats 2 --profile --cpu-max-cells 0 --estimate-from "$OUTDIR/gpu-graph-50k-$STAMP.json" --exact-max-s 30
  graph 1M 105 --cpu-max-cells 0 --estimate-from "$OUTDIR/gpu-graph-200k-$STAMP.json" --exact-max-s 60
fi

# --- parity tests on this adapter, in the time left of 470 s (8 minutes = 480 s)
LEFT=$((470 - (SECONDS - T0)))
[ "$LEFT" -gt 150 ] && LEFT=150
if [ ! -x node_modules/.bin/vitest ]; then
  say "stage parity: skipped (node_modules/.bin/vitest not carried)"
  PARITY=skipped
elif [ "$SMALL" = 1 ]; then
  stage parity 120 node_modules/.bin/vitest run test/gpu/ceiling.test.ts
  PARITY=$?
elif [ "$LEFT" -lt 30 ]; then
  say "stage parity: skipped (${LEFT}s left of the 470 s budget)"
  PARITY=skipped
else
  stage parity "$LEFT" node_modules/.bin/vitest run test/gpu
  PARITY=$?
fi
say "done in $((SECONDS - T0)) s: steps exit $STEPS, graph stages failed $GRAPH_FAILS, parity $PARITY; results $OUTDIR/gpu-{steps,graph-*}-$STAMP.json, log $LOG"
[ "$STEPS" = 0 ] && [ "$GRAPH_FAILS" = 0 ] && { [ "$PARITY" = 0 ] || [ "$PARITY" = skipped ]; }
