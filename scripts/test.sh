#!/usr/bin/env bash
# Runs every test on a fresh Debian bookworm machine with Node 20: installs the npm packages and,
# when root, the Debian packages the tests need (a software WebGPU adapter, python3-anndata);
# builds; then runs vitest and ends with one plain "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/setup-webgpu.sh
bash scripts/setup-anndata.sh
npm run build --silent
report="$(mktemp -d)/vitest.json"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
if [ -s "$report" ]; then
  node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));' "$report"
fi
exit "$status"
