#!/usr/bin/env bash
# Starts ecom as a mesh on loopback: one process per service and one edge in front of them.
# Ctrl-C stops them all. Ports: services 50061-50065, edge $PORT (default 3000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release --locked
bin=target/release/ecom
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
# Separate processes share their events through NATS (a process of some services refuses to
# start without it).
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM

port=50061
upstreams=()
for service in catalog auth users orders payments; do
  # Services that call another are told where it is: orders -> catalog (50061) and
  # payments (50065), payments -> orders (50064).
  case $service in
    orders) extra=(--catalog-url http://127.0.0.1:50061 --payments-url http://127.0.0.1:50065) ;;
    payments) extra=(--orders-url http://127.0.0.1:50064) ;;
    *) extra=() ;;
  esac
  # Only the first process migrates and seeds before the others start.
  "$bin" serve --services "$service" --grpc-port "$port" --host 127.0.0.1 "${extra[@]}" &
  pids+=($!)
  upstreams+=(--upstream "$service=http://127.0.0.1:$port")
  port=$((port + 1))
  [ "$service" = catalog ] && sleep 2
done
"$bin" edge "${upstreams[@]}" --host 127.0.0.1 --port "${PORT:-3000}" &
pids+=($!)
wait
