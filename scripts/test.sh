#!/usr/bin/env bash
# Runs every test: starts PostgreSQL and Redis if needed, drops databases left by earlier test
# runs, then runs the workspace's tests (unit, transcoder, integration through the real edge).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# Each test makes its own database; clear the ones earlier runs left behind.
# One psql session runs all the DROPs (a process per database took minutes after many runs).
psql -h 127.0.0.1 -U postgres -Atqc \
  "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE);', datname) FROM pg_database WHERE datname LIKE 'ecom_test_%'" \
  | psql -h 127.0.0.1 -U postgres -q >/dev/null || true
export SQLX_OFFLINE=true
cargo test --workspace --locked "$@"
