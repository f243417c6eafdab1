#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs and starts ClickHouse and the tansu Kafka broker
# (building tansu takes ~10 minutes, once per machine), checks formatting and lints, then runs every test,
# the end-to-end ones against those real services.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deploy/services.sh start
eval "$(deploy/services.sh env)"
echo "[test] cargo fmt --check" >&2
cargo fmt --all -- --check
echo "[test] cargo clippy" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "[test] cargo test (Kafka $COUPANG_ETL_TEST_KAFKA, ClickHouse $COUPANG_ETL_TEST_CLICKHOUSE)" >&2
cargo test --workspace
