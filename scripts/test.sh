#!/usr/bin/env bash
# Runs every test: starts PostgreSQL and Redis if needed, drops databases left by earlier test
# runs, then runs the workspace's tests (unit, transcoder, integration through the real edge).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# Each test makes its own database; clear the ones earlier runs left behind.
psql -h 127.0.0.1 -U postgres -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'ecom_test_%'" \
  | while read -r db; do dropdb -h 127.0.0.1 -U postgres --if-exists "$db" || true; done
export SQLX_OFFLINE=true
cargo test --workspace --locked "$@"
