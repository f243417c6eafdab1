#!/usr/bin/env bash
# Fuzzes the decoders that meet outside bytes: the WING API's JSON (envelope, order sheets, receipts,
# revenue rows → events → rules) and Kafka payloads (every Avro schema, the transform's changelog).
#
# Usage: deploy/fuzz.sh [seconds per target]   (default 30: the smoke run the test command ends with)
#        deploy/fuzz.sh 3600                    (a long run; new inputs stay in fuzz/corpus/<target>)
#
# Installs cargo-fuzz (crates.io) when missing. libFuzzer needs a nightly compiler's flags: the
# machine's nightly toolchain when there is one, else the stable one with RUSTC_BOOTSTRAP=1.
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the run; keep it as a regression
# test (see schemas/tests/poison.rs) once fixed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-30}
log() { echo "[fuzz] $*" >&2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (about 2 minutes, once per machine)"
  cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
  fuzz() { cargo +nightly fuzz "$@"; }
else
  fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi

cd fuzz
# No sanitizer: the code under test is safe Rust, so what the fuzzer hunts is panics, aborts and
# broken invariants; building without ASan keeps the build to about 2 minutes.
fuzz build --sanitizer none
for target in coupang_json avro_events; do
  if [ "$seconds" -le 60 ]; then
    # The smoke run starts from the committed seeds each time and leaves the corpus untouched.
    corpus=$(mktemp -d)
    cp corpus/"$target"/* "$corpus"/
  else
    corpus=corpus/$target
  fi
  log "$target: ${seconds}s"
  fuzz run --sanitizer none "$target" "$corpus" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==|SUMMARY)|panicked|Crash|crash-" >&2
  [ "$corpus" = "corpus/$target" ] || rm -rf "$corpus"
done
log "no crash"
