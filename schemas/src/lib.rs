//! The events that cross Kafka, their Avro schemas (the `.avsc` files beside this crate), and the codec.
//!
//! Wire format: Avro **single-object encoding** — `C3 01`, the 8-byte CRC-64-AVRO (Rabin) fingerprint of
//! the writer's schema, then the Avro datum. The fingerprint tells a reader which schema wrote a record,
//! so records written by an older schema version are resolved against the current one. No schema
//! registry is needed, and any Avro library can read the topics.
//!
//! Evolution policy: a schema changes only in backward-compatible ways (new fields with defaults,
//! widened unions); every version ever released stays in [`EventType::history`] so old records decode.

mod codec;
mod datum;
mod domain;
mod events;
mod readers;

pub use codec::{
    decode, decode_facts, decode_with_apache_avro, encode, encode_as, encode_order_facts, encode_state_record,
    CodecError, EventType,
};
pub use domain::{
    ChangeCause, FactStatus, OrderStatus, ReceiptStatus, ReceiptType, SaleType, SettlementStatus, SettlementType,
};
pub use events::{
    FactKey, OrderKey, OrderPaymentFacts, OrderSheetEvent, OrderSheetItem, OrderStateRecord, OrderStateRecordView,
    PaymentFact, ReturnRequestEvent, ReturnRequestItem, RevenueEvent, RevenueItem, SettlementEvent,
};
