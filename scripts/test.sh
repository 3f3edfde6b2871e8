#!/usr/bin/env bash
# Runs every test on a fresh Debian machine with Node 20: installs npm packages and the system
# packages the tests need (when root), builds, then runs vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
npx vitest run "$@"
