#!/usr/bin/env bash
# Soak: the mesh (one process per service and an edge, as scripts/mesh.sh starts it) on a
# fresh database, then benches/soak.rs drives it with 64 clients for 5 minutes (SOAK_CLIENTS,
# SOAK_SECONDS) and checks: no 5xx, no oversold unit, every order a client was told of and no
# other, RSS at minute 1 and at the end. Exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
export SQLX_OFFLINE=true
cargo build --release --locked --bin ecom
cargo bench --locked --bench soak --no-run

db="ecom_soak_$$"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export JWT_SECRET="soak-secret-soak-secret-soak-secret-0123"
export REDIS_URL="redis://127.0.0.1:6379" REDIS_KEY_PREFIX="ecom-soak-$$:"
export RATE_LIMIT_ENABLED=false LOG_LEVEL=warn HOST=127.0.0.1
# One process per service: their events go through NATS, on a stream of this run's own.
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}" EVENTS_STREAM="ECOM_SOAK_$$"
bin=target/release/ecom
"$bin" migrate >/dev/null

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Below the kernel's ephemeral range (32768+), where outgoing connections take ports.
port=$((21000 + $$ % 1000 * 10))
upstreams=()
for service in catalog auth users orders payments; do
  url="http://127.0.0.1:$port"
  case $service in
    orders) extra=(--catalog-url "$catalog_url" --payments-url "http://127.0.0.1:$((port + 1))") ;;
    payments) extra=(--orders-url "$orders_url") ;;
    *) extra=() ;;
  esac
  "$bin" serve --services "$service" --grpc-port "$port" "${extra[@]}" &
  pids+=($!)
  upstreams+=(--upstream "$service=$url")
  [ "$service" = catalog ] && catalog_url=$url && sleep 3
  [ "$service" = orders ] && orders_url=$url
  port=$((port + 1))
done
edge_port=$port
"$bin" edge "${upstreams[@]}" --port "$edge_port" &
pids+=($!)

# Ready when every service answers through the edge (503 while one is still starting).
api="http://127.0.0.1:$edge_port/api/v1"
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$@")" != 503 ]; }
for _ in $(seq 1 240); do
  up "$api/products/1" && up "$api/auth/me" && up "$api/users/me" && up "$api/cart" \
    && up -X POST "$api/payments/intents" && break
  sleep 0.5
done

SOAK_URL="$api" SOAK_DATABASE_URL="$DATABASE_URL" \
  SOAK_PIDS="${pids[*]}" cargo bench --locked --bench soak
