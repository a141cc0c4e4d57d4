#!/usr/bin/env bash
# Runs every test: starts PostgreSQL and Redis if needed, installs chromium and the browser
# test's npm packages if missing, drops databases left by earlier test
# runs, then runs the workspace's tests (unit, transcoder, integration through the real edge).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# The browser test (tests/api/journey.rs) drives Debian's chromium with playwright-core from npm.
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian's package) for the browser test"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y -q chromium >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium >/dev/null; }
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --silent
fi
# tests/api/deploy.rs renders deploy/ with kubectl's built-in kustomize.
command -v kubectl >/dev/null 2>&1 \
  || { echo "kubectl is needed by tests/api/deploy.rs (kubectl kustomize deploy/...)" >&2; exit 1; }
# Each test makes its own database; clear the ones earlier runs left behind.
# One psql session runs all the DROPs (a process per database took minutes after many runs).
psql -h 127.0.0.1 -U postgres -Atqc \
  "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE);', datname) FROM pg_database WHERE datname LIKE 'ecom_test_%'" \
  | psql -h 127.0.0.1 -U postgres -q >/dev/null || true
export SQLX_OFFLINE=true
cargo test --workspace --locked "$@"
