#!/usr/bin/env bash
# Runs the whole system: starts PostgreSQL, Redis and NATS if needed, then `ecom serve` in release
# mode (it creates the database, applies migrations and seeds the demo catalog).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export NATS_URL="${NATS_URL-nats://127.0.0.1:4222}"
exec cargo run --release --locked -- serve "$@"
