#!/usr/bin/env bash
# The main job, from a fresh machine: installs and starts ClickHouse (loopback), builds coupang-etl, runs
# the pipeline over a simulated month against the built-in Coupang simulator with an embedded Kafka, and
# prints the daily payment amounts read back from ClickHouse, checked against the simulator's truth.
# Extra arguments go to `coupang-etl`, e.g. `deploy/demo.sh --config my.toml` (set kafka.brokers there
# to use a real broker, e.g. the Apache Kafka that `deploy/services.sh start kafka` runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deploy/services.sh start clickhouse
echo "[demo] building coupang-etl (the first build takes a few minutes)" >&2
cargo build --quiet --bin coupang-etl
exec target/debug/coupang-etl "$@" demo
