//! Writes the v1 compatibility fixtures, `schemas/fixtures/*.v1.avro`, that `tests/evolution.rs` and
//! `tests/legacy_fingerprint.rs` read:
//!
//! ```text
//! cargo run -p coupang-schemas --example write_v1_fixtures [-- --force]
//! ```
//!
//! They were written once, while v1 was current, and must never be written again: this encodes with
//! the current schemas and the current codec (whose fingerprint is no longer the one v1's records
//! carry), so rewriting them would replace the records the tests guard with ones that prove nothing.
//! It refuses when any of them exists; `--force` overwrites them, for a new fixture set only.

#[path = "../tests/v1_events/mod.rs"]
mod v1_events;

use coupang_schemas::encode;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let force = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => false,
        [flag] if flag == "--force" => true,
        other => {
            eprintln!("usage: write_v1_fixtures [--force] (got {other:?})");
            return ExitCode::from(2);
        }
    };
    let fixtures = [
        ("order_sheet_event.v1.avro", encode(&v1_events::order_sheet())),
        ("return_request_event.v1.avro", encode(&v1_events::return_request())),
        ("revenue_event.v1.avro", encode(&v1_events::revenue())),
        ("payment_fact.v1.avro", encode(&v1_events::fact())),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let existing: Vec<String> = fixtures
        .iter()
        .map(|(name, _)| dir.join(name))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() && !force {
        eprintln!(
            "refusing to overwrite the v1 compatibility fixtures ({}): they hold what v1 wrote, and this \
             writes with the current schemas. Nothing written; --force overwrites them.",
            existing.join(", ")
        );
        return ExitCode::FAILURE;
    }
    for (name, bytes) in fixtures {
        let path = dir.join(name);
        let bytes = bytes.unwrap_or_else(|e| panic!("{name}: {e}"));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
