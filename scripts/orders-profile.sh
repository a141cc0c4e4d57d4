#!/usr/bin/env bash
# Where the time of POST /orders goes (issue #16, target 5). `ecom serve` in release on a fresh
# database, wrk as a separate process (one thread, PROFILE_CONNECTIONS=64 connections, one buyer
# each, two lines per order), and, for each of two settings of the database, side by side:
#   orders/s and latency (wrk), PostgreSQL transactions and WAL flushes per order
#   (pg_stat_database, pg_stat_wal), and the machine's CPU by process (perf, cpu-clock samples
#   of every CPU, when perf is installed: Debian's linux-perf).
# The two settings: synchronous_commit on (as deployed) and off for this database only (what
# waiting for the disk at every COMMIT costs; not a setting to deploy).
# PROFILE_SECONDS (15) per run. Run it alone on the machine: it measures the whole machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
export SQLX_OFFLINE=true
cargo build --release --locked --bin ecom
seconds="${PROFILE_SECONDS:-15}"
connections="${PROFILE_CONNECTIONS:-64}"

db="ecom_orders_profile_$$"
port=$((22000 + $$ % 1000 * 2))
work="$(mktemp -d)"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export JWT_SECRET="profile-secret-profile-secret-0123456789"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" REDIS_KEY_PREFIX="ecom-profile-$$:"
export NATS_URL="${NATS_URL-nats://127.0.0.1:4222}" EVENTS_STREAM="ECOM_PROFILE_$$"
export RATE_LIMIT_ENABLED=false LOG_LEVEL=warn HOST=127.0.0.1 PORT=$port GRPC_PORT=$((port + 1))
psql_db() { psql -h 127.0.0.1 -U postgres -d "$db" -Atqc "$1"; }
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

start() {
  target/release/ecom serve >"$work/ecom.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null && return 0
    sleep 0.5
  done
  echo "ecom did not start:" >&2; cat "$work/ecom.log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

start
psql_db "UPDATE products SET stock = 1000000 WHERE id <= 20" >/dev/null
api="http://127.0.0.1:$port/api/v1"
# One buyer per connection (wrk's Lua picks the token by connection).
: >"$work/tokens"
for n in $(seq 1 "$connections"); do
  curl -fs -X POST "$api/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"buyer$n@profile.test\",\"password\":\"Profile-pass-123\",\"firstName\":\"Buyer\",\"lastName\":\"Number$n\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' >>"$work/tokens"
done
cat >"$work/orders.lua" <<'LUA'
local tokens = {}
for line in io.lines(os.getenv("PROFILE_TOKENS")) do tokens[#tokens + 1] = line end
local n = 0
-- Requests cycle through the buyers, so each connection's orders rarely share one.
request = function()
  n = n + 1
  local t = tokens[(n % #tokens) + 1]
  local a, b = 1 + n % 20, 1 + (n + 7) % 20
  local body = string.format('{"products":[{"id":%d,"quantity":1},{"id":%d,"quantity":2}],"paymentMethod":"card","shippingAddress":{"firstName":"John","lastName":"Doe","address":"123 Main St","city":"New York","state":"NY","zipCode":"10001","country":"USA","phone":"+1234567890"}}', a, b)
  return wrk.format("POST", "/api/v1/orders", {["content-type"] = "application/json", ["authorization"] = "Bearer " .. t}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("  p50 %.1f ms, p99 %.1f ms, non-2xx/3xx %d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end
LUA
export PROFILE_TOKENS="$work/tokens"

counters() {
  psql_db "SELECT (SELECT count(*) FROM orders),
                  (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
                  (SELECT wal_sync FROM pg_stat_wal)" | tr '|' ' '
}

run() {
  local label=$1
  echo "== $label"
  wrk -t1 -c"$connections" -d3s -s "$work/orders.lua" "http://127.0.0.1:$port" >/dev/null
  read -r orders0 commits0 syncs0 <<<"$(counters)"
  if command -v perf >/dev/null; then
    perf record -a -g -F 499 -e cpu-clock -o "$work/perf.data" -- sleep "$seconds" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  wrk -t1 -c"$connections" -d"${seconds}s" -s "$work/orders.lua" "http://127.0.0.1:$port" \
    | grep -E "Requests/sec|p50" | sed 's/^/  /'
  [ -n "${perf_pid:-}" ] && wait "$perf_pid" || true
  read -r orders1 commits1 syncs1 <<<"$(counters)"
  local placed=$((orders1 - orders0))
  echo "  orders placed: $placed ($((placed / seconds))/s); per order: $(python3 -c "print(f'{($commits1-$commits0)/$placed:.1f} PostgreSQL transactions, {($syncs1-$syncs0)/$placed:.2f} WAL flushes')")"
  psql_db "SELECT count(*) FROM products WHERE id <= 20 AND stock < 0" | sed 's/^/  products oversold: /'
  if [ -f "$work/perf.data" ]; then
    echo "  CPU samples by process (all CPUs, cpu-clock):"
    perf report -i "$work/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null \
      | grep -E '^ +[0-9]' | head -8 | sed 's/^/  /' || true
    echo "  ecom's CPU samples by library (its threads are tokio-rt-worker):"
    perf report -i "$work/perf.data" --no-children --comm tokio-rt-worker --sort dso --stdio -g none 2>/dev/null \
      | grep -E '^ +[0-9]' | head -6 | sed 's/^/  /' || true
    echo "  ecom's CPU samples by function:"
    perf report -i "$work/perf.data" --no-children --comm tokio-rt-worker --sort sym --stdio -g none 2>/dev/null \
      | grep -E '^ +[0-9]' | head -15 | sed 's/^/  /' || true
    echo "  postgres's CPU samples by function:"
    perf report -i "$work/perf.data" --no-children --comm postgres --sort sym --stdio -g none 2>/dev/null \
      | grep -E '^ +[0-9]' | head -12 | sed 's/^/  /' || true
    rm -f "$work/perf.data"
  fi
}

run "synchronous_commit on (as deployed)"
stop
psql -h 127.0.0.1 -U postgres -qc "ALTER DATABASE $db SET synchronous_commit = off"
start
run "synchronous_commit off for this database (what the WAL flush at COMMIT costs)"
