#!/usr/bin/env bash
# Checks that the committed offline query data (.sqlx/) is exactly what the code's
# `sqlx::query!` macros need: the offline equivalent of `cargo sqlx prepare --check`, without
# installing sqlx-cli. Compiles the crate once against a freshly migrated database, letting the
# macros write their data into a temporary directory, then compares that directory with .sqlx/:
# a file missing from .sqlx/ would break offline builds, an extra one is stale.
# `--fix` replaces .sqlx/ with what the macros wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
db="ecom_sqlx_check_$$"
out="$(mktemp -d)"
trap 'psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$out"' EXIT
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
for migration in migrations/*.sql; do
  psql -h 127.0.0.1 -U postgres -d "$db" -q -1 -v ON_ERROR_STOP=1 -f "$migration" >/dev/null
done
# The macros run whenever the crate compiles; touching its root makes sure they do.
touch services/lib.rs
SQLX_OFFLINE=false DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" SQLX_OFFLINE_DIR="$out" \
  cargo check -p ecom --lib --locked --quiet
touch services/lib.rs
if [ "${1:-}" = "--fix" ]; then
  rm -f .sqlx/query-*.json
  cp "$out"/query-*.json .sqlx/
  echo "sqlx: .sqlx/ rewritten ($(ls .sqlx | wc -l) queries)"
elif ! diff -rq "$out" .sqlx; then
  echo "sqlx: .sqlx/ is stale; run scripts/sqlx-check.sh --fix and commit .sqlx/" >&2
  exit 1
else
  echo "sqlx: .sqlx/ matches the code ($(ls .sqlx | wc -l) queries)"
fi
