#!/usr/bin/env bash
# Runs every test on a fresh Debian bookworm machine with Node 20: installs the npm packages and,
# when root, the Debian packages the tests need (a software WebGPU adapter, python3-anndata);
# builds; then runs vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/setup-webgpu.sh
bash scripts/setup-anndata.sh
npm run build --silent
npx vitest run "$@"
