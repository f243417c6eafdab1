//! Arbitrary bytes as the body of a WING Open API answer (the first byte picks the endpoint): the
//! envelope, record and payout decoders never panic, and whatever decodes goes on through events and rules.
#![no_main]

use coupang_etl_fuzz::check_events;
use coupang_ingest::client::model::{OrderSheet, ReturnRequest, RevenueRecord};
use coupang_ingest::client::{decode_page, decode_settlements};
use coupang_ingest::{order_sheet_event, return_request_event, RevenueListing};
use coupang_transform::order::RawEvent;
use libfuzzer_sys::fuzz_target;

fn records<T: serde::de::DeserializeOwned>(endpoint: &'static str, body: &[u8], id_field: &str) -> Vec<T> {
    match decode_page::<T>("fuzz", endpoint, body, id_field) {
        Ok(page) => page.records.into_iter().filter_map(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let (vendor, alias) = ("A00012345", "fuzz");
    // Payouts (a bare array): the decoder never panics, whatever the bytes.
    let _ = decode_settlements(alias, body);
    let events: Vec<RawEvent> = match which % 3 {
        0 => records::<OrderSheet>("ordersheets", body, "shipmentBoxId")
            .iter()
            .map(|sheet| RawEvent::OrderSheet(order_sheet_event(vendor, alias, 0, sheet)))
            .collect(),
        1 => records::<ReturnRequest>("returnRequests", body, "receiptId")
            .iter()
            .map(|receipt| RawEvent::ReturnRequest(return_request_event(vendor, alias, 0, receipt)))
            .collect(),
        _ => {
            let mut listing = RevenueListing::default();
            records::<RevenueRecord>("revenue-history", body, "orderId")
                .iter()
                .map(|row| RawEvent::Revenue(listing.event(vendor, alias, 0, row)))
                .collect()
        }
    };
    check_events(&events);
});
