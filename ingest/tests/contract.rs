//! The contract corpus: bodies of every endpoint and version the client calls, written to Coupang's
//! documented shapes with their quirks (`tests/contract/*.json`), each with the events it must yield,
//! the records it must dead-letter (by field, JSON path and raw value), or the error it must raise.
//!
//! A case file holds `endpoint`, `version`, `call` (`list`, `single box`, `by order`), `asked` (the id
//! a look-up asked for), `grounded_in` (the Coupang article or rule it follows), `quirks`, `body`
//! and `expect`: `events` (each a subset of the event's fields, in order), `bad_records`,
//! `next_token`, or `error` (a fragment of the error message).

use coupang_ingest::client::model::{OrderSheet, ReturnRequest, RevenueRecord};
use coupang_ingest::client::{decode_order_boxes, decode_page, decode_single_box, Page};
use coupang_ingest::{order_sheet_event, return_request_event, ClientError, RevenueListing};
use serde_json::Value;
use std::path::PathBuf;

const ALIAS: &str = "brand-a";
const VENDOR: &str = "A00012345";

struct Case {
    name: String,
    json: Value,
}

impl Case {
    fn field(&self, name: &str) -> &Value {
        &self.json[name]
    }
    fn body(&self) -> Vec<u8> {
        self.field("body").to_string().into_bytes()
    }
    fn asked(&self) -> i64 {
        self.field("asked")
            .as_i64()
            .unwrap_or_else(|| panic!("{}: a look-up case names the id it asked for", self.name))
    }
}

fn corpus() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contract");
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .expect("the contract corpus is in the repository")
        .map(|entry| entry.expect("a readable corpus entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| Case {
            name: path.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            json: serde_json::from_slice(&std::fs::read(&path).expect("a readable case")).expect("a case is JSON"),
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// What a case's body yielded: events as JSON, bad records, the next-page token, or an error.
#[derive(Default)]
struct Outcome {
    events: Vec<Value>,
    bad_records: Vec<Value>,
    next_token: Option<String>,
    error: Option<String>,
}

fn events_of<T>(records: Vec<Result<T, ClientError>>, mut event: impl FnMut(&T) -> Value) -> Outcome {
    let mut outcome = Outcome::default();
    for record in records {
        match record {
            Ok(record) => outcome.events.push(event(&record)),
            Err(ClientError::BadRecord { record_id, fault, .. }) => outcome
                .bad_records
                .push(serde_json::json!({"record": record_id.to_string(), "field": fault.field, "value": fault.value})),
            Err(other) => panic!("a record error that is not a bad record: {other}"),
        }
    }
    outcome
}

fn page<T>(result: Result<Page<T>, ClientError>, event: impl FnMut(&T) -> Value) -> Outcome {
    match result {
        Ok(page) => Outcome { next_token: page.next_token, ..events_of(page.records, event) },
        Err(error) => Outcome { error: Some(error.to_string()), ..Outcome::default() },
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("events serialize")
}

fn run(case: &Case) -> Outcome {
    let body = case.body();
    let sheet_event = |sheet: &OrderSheet| to_json(&order_sheet_event(VENDOR, ALIAS, 0, sheet));
    let endpoint = case.field("endpoint").as_str().unwrap_or_default();
    match (endpoint, case.field("call").as_str().unwrap_or_default()) {
        ("ordersheets", "list") => {
            page(decode_page::<OrderSheet>(ALIAS, "ordersheets", &body, "shipmentBoxId"), sheet_event)
        }
        ("ordersheets", "single box") => match decode_single_box(ALIAS, &body, case.asked()) {
            Ok(sheet) => Outcome { events: vec![sheet_event(&sheet)], ..Outcome::default() },
            Err(error) => Outcome { error: Some(error.to_string()), ..Outcome::default() },
        },
        ("ordersheets", "by order") => match decode_order_boxes(ALIAS, &body, case.asked()) {
            Ok(records) => events_of(records, sheet_event),
            Err(error) => Outcome { error: Some(error.to_string()), ..Outcome::default() },
        },
        ("returnRequests", "list") => {
            page(decode_page::<ReturnRequest>(ALIAS, "returnRequests", &body, "receiptId"), |receipt| {
                to_json(&return_request_event(VENDOR, ALIAS, 0, receipt))
            })
        }
        ("revenue-history", "list") => {
            let mut listing = RevenueListing::default();
            page(decode_page::<RevenueRecord>(ALIAS, "revenue-history", &body, "orderId"), |row| {
                to_json(&listing.event(VENDOR, ALIAS, 0, row))
            })
        }
        other => panic!("{}: no such endpoint and call {other:?}", case.name),
    }
}

/// Whether every field `expected` names has that value in `actual` (objects by subset, lists item by
/// item with the same length, anything else equal).
fn matches(expected: &Value, actual: &Value, path: &str, mismatches: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, value) in want {
                match got.get(key) {
                    Some(found) => matches(value, found, &format!("{path}.{key}"), mismatches),
                    None => mismatches.push(format!("{path}.{key}: absent")),
                }
            }
        }
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                mismatches.push(format!("{path}: {} items, expected {}", got.len(), want.len()));
            }
            for (index, (value, found)) in want.iter().zip(got).enumerate() {
                matches(value, found, &format!("{path}[{index}]"), mismatches);
            }
        }
        (want, got) if want == got => {}
        (want, got) => mismatches.push(format!("{path}: {got}, expected {want}")),
    }
}

#[test]
fn every_case_of_the_corpus_yields_exactly_its_expected_events() {
    let cases = corpus();
    let mut failures = Vec::new();
    for case in &cases {
        let expect = case.field("expect");
        let outcome = run(case);
        let mut mismatches = Vec::new();
        match (expect.get("error").and_then(Value::as_str), &outcome.error) {
            (Some(want), Some(got)) if got.contains(want) => {}
            (Some(want), got) => mismatches.push(format!("error: {got:?}, expected one containing {want:?}")),
            (None, Some(got)) => mismatches.push(format!("unexpected error: {got}")),
            (None, None) => {
                let events = Value::Array(outcome.events);
                matches(&expect["events"], &events, "events", &mut mismatches);
                let bad = Value::Array(outcome.bad_records);
                matches(
                    expect.get("bad_records").unwrap_or(&Value::Array(vec![])),
                    &bad,
                    "bad_records",
                    &mut mismatches,
                );
                if let Some(token) = expect.get("next_token") {
                    let got = outcome.next_token.map_or(Value::Null, Value::String);
                    matches(token, &got, "next_token", &mut mismatches);
                }
            }
        }
        if !mismatches.is_empty() {
            failures.push(format!("{}:\n  {}", case.name, mismatches.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn the_corpus_covers_every_endpoint_version_and_call_the_client_makes() {
    let covered: std::collections::BTreeSet<(String, String, String)> = corpus()
        .iter()
        .map(|case| {
            let text = |name: &str| case.field(name).as_str().unwrap_or_default().to_string();
            (text("endpoint"), text("version"), text("call"))
        })
        .collect();
    let needed = [
        ("ordersheets", "v4", "list"),
        ("ordersheets", "v5", "list"),
        ("ordersheets", "v5", "single box"),
        ("ordersheets", "v4", "by order"),
        ("ordersheets", "v5", "by order"),
        ("returnRequests", "v4", "list"),
        ("returnRequests", "v6", "list"),
        ("revenue-history", "v1", "list"),
    ];
    for (endpoint, version, call) in needed {
        let key = (endpoint.to_string(), version.to_string(), call.to_string());
        assert!(covered.contains(&key), "no contract case for {endpoint} {version} {call}");
    }
    for case in corpus() {
        assert!(
            case.field("grounded_in").as_str().is_some_and(|g| !g.is_empty()),
            "{} says what it follows",
            case.name
        );
    }
}

#[test]
fn dead_letters_never_quote_personal_data() {
    for case in corpus() {
        if case.field("call").as_str() != Some("list") {
            continue;
        }
        let endpoint = case.field("endpoint").as_str().unwrap_or_default();
        let body = case.body();
        let bad: Vec<String> = match endpoint {
            "ordersheets" => decode_page::<OrderSheet>(ALIAS, "ordersheets", &body, "shipmentBoxId")
                .map(|page| page.records.into_iter().filter_map(Result::err).map(|e| format!("{e:?}")).collect())
                .unwrap_or_default(),
            _ => continue,
        };
        for text in bad {
            assert!(!text.contains("이*주") && !text.contains("receiver"), "{}: {text}", case.name);
        }
    }
}
