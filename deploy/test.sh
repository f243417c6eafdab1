#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs and starts ClickHouse and Apache Kafka (its jars
# resolved from Maven Central, ~15 s once per machine), makes the Python venv (fastavro, and chdb: the
# ClickHouse 26.9 engine, ~200 MB from PyPI once per machine), checks formatting and lints, runs every test,
# the end-to-end ones against those real services, and ends with a short fuzz run of the decoders.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deploy/services.sh start
eval "$(deploy/services.sh env)"
python_env=$(deploy/python.sh); eval "$python_env"  # the venv: fastavro reads our topics, chdb is ClickHouse 26.9
echo "[test] cargo fmt --check" >&2
cargo fmt --all -- --check
echo "[test] cargo clippy" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "[test] cargo test (Kafka $COUPANG_ETL_TEST_KAFKA, ClickHouse $COUPANG_ETL_TEST_CLICKHOUSE)" >&2
cargo test --workspace
echo "[test] fuzz smoke run (30 s per decoder target)" >&2
deploy/fuzz.sh 30
