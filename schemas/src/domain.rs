//! The marketplace's vocabulary as types: order statuses, receipt types and statuses, sale types,
//! payout types and statuses, and the status of a payment fact. On the wire (Avro, ClickHouse, JSON)
//! each is the string Coupang spells, so the bytes are the same as when these were plain strings (the
//! v1 fixtures prove it).
//!
//! Coupang's own vocabularies are *open*: a word this version does not know is kept as sent
//! (`Unknown`), because the raw topics hold what Coupang said and the transform decides what to do with
//! it (it dead-letters the record, naming the value). The sale type is closed: Coupang documents two,
//! and a record with another cannot be decoded.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// Shows and serializes a word as it is spelled (its `as_str`): the string on the wire.
macro_rules! spelled_as_str {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

/// Declares an open vocabulary: its known words, their spelling, and an `Unknown` kept as sent.
macro_rules! open_vocabulary {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$word_doc:meta])* $word:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$word_doc])* $word,)+
            /// A spelling this version does not know, kept as sent.
            Unknown(String),
        }

        impl $name {
            /// Every word this version knows, in lifecycle order where there is one.
            pub const KNOWN: &'static [$name] = &[$($name::$word),+];

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$word => $text,)+
                    $name::Unknown(text) => text,
                }
            }

            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Unknown(_))
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $($text => $name::$word,)+
                    other => $name::Unknown(other.to_string()),
                }
            }
        }

        spelled_as_str!($name);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(Words::<$name>::new($what))
            }
        }
    };
}

open_vocabulary! {
    /// A shipment box's status on its order sheet, in lifecycle order.
    OrderStatus, "an order status" {
        Accept = "ACCEPT",
        Instruct = "INSTRUCT",
        Departure = "DEPARTURE",
        Delivering = "DELIVERING",
        /// Delivered without tracking; Coupang lists it after DELIVERING.
        NoneTracking = "NONE_TRACKING",
        FinalDelivery = "FINAL_DELIVERY",
    }
}

open_vocabulary! {
    /// What a receipt undoes: units before shipping (`CANCEL`) or after (`RETURN`).
    ReceiptType, "a receipt type" {
        Cancel = "CANCEL",
        Return = "RETURN",
    }
}

open_vocabulary! {
    /// A cancel or return receipt's status, in lifecycle order.
    ReceiptStatus, "a receipt status" {
        ReleaseStopUnchecked = "RELEASE_STOP_UNCHECKED",
        ReturnsUnchecked = "RETURNS_UNCHECKED",
        VendorWarehouseConfirm = "VENDOR_WAREHOUSE_CONFIRM",
        RequestCoupangCheck = "REQUEST_COUPANG_CHECK",
        ReturnsCompleted = "RETURNS_COMPLETED",
    }
}

open_vocabulary! {
    /// A payout cycle's kind (`settlement-histories`): a weekly seller is paid 70% of a week's target as
    /// `WEEKLY` and the 30% held back as `RESERVE`, per recognition month; a monthly seller gets
    /// `MONTHLY`. `DAILY` shows in Coupang's own example, undocumented.
    SettlementType, "a settlement type" {
        Weekly = "WEEKLY",
        Monthly = "MONTHLY",
        Reserve = "RESERVE",
        Additional = "ADDITIONAL",
        Daily = "DAILY",
    }
}

open_vocabulary! {
    /// Whether a payout was paid (`DONE`) or is scheduled (`SUBJECT`: its figures may still change).
    SettlementStatus, "a settlement status" {
        Subject = "SUBJECT",
        Done = "DONE",
    }
}

open_vocabulary! {
    /// Why a fact's version differs from the one before it (derived by the transform from the event
    /// that changed the order). `UNCHANGED`: this item did not change; another item of the order did,
    /// or only the order's version moved (an open receipt, a later source time; a transform in
    /// transactions sends no new version for that).
    ChangeCause, "a change cause" {
        NewOrder = "NEW_ORDER",
        Status = "STATUS",
        Confirmation = "CONFIRMATION",
        Cancel = "CANCEL",
        Return = "RETURN",
        Refund = "REFUND",
        Withdrawal = "WITHDRAWAL",
        Correction = "CORRECTION",
        Unchanged = "UNCHANGED",
        /// Written before facts carried their cause (PaymentFact v1).
        Unrecorded = "UNRECORDED",
    }
}

/// A revenue-history row's kind: a `SALE` adds to the seller's revenue, a `REFUND` subtracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaleType {
    Sale,
    Refund,
}

impl SaleType {
    pub fn as_str(self) -> &'static str {
        match self {
            SaleType::Sale => "SALE",
            SaleType::Refund => "REFUND",
        }
    }
}

impl TryFrom<&str> for SaleType {
    type Error = String;

    fn try_from(text: &str) -> Result<Self, String> {
        match text {
            "SALE" => Ok(SaleType::Sale),
            "REFUND" => Ok(SaleType::Refund),
            other => Err(format!("unknown sale type {other:?}")),
        }
    }
}

spelled_as_str!(SaleType);

impl<'de> Deserialize<'de> for SaleType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Reads the word where the deserializer has it, not copied into a string first (one per
        /// revenue row the transform reads).
        struct Word;
        impl Visitor<'_> for Word {
            type Value = SaleType;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sale type")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<SaleType, E> {
                SaleType::try_from(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Word)
    }
}

/// A payment fact's status: what happened to the item last. Once Coupang confirmed the purchase or
/// every unit was undone that is the status; before, it is the order sheet's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FactStatus {
    Ordered(OrderStatus),
    Confirmed,
    Cancelled,
    Returned,
}

impl FactStatus {
    pub fn as_str(&self) -> &str {
        match self {
            FactStatus::Ordered(status) => status.as_str(),
            FactStatus::Confirmed => "CONFIRMED",
            FactStatus::Cancelled => "CANCELLED",
            FactStatus::Returned => "RETURNED",
        }
    }
}

impl From<&str> for FactStatus {
    fn from(text: &str) -> Self {
        match text {
            "CONFIRMED" => FactStatus::Confirmed,
            "CANCELLED" => FactStatus::Cancelled,
            "RETURNED" => FactStatus::Returned,
            other => FactStatus::Ordered(OrderStatus::from(other)),
        }
    }
}

impl From<OrderStatus> for FactStatus {
    fn from(status: OrderStatus) -> Self {
        FactStatus::Ordered(status)
    }
}

spelled_as_str!(FactStatus);

impl<'de> Deserialize<'de> for FactStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(Words::<FactStatus>::new("a fact status"))
    }
}

/// Reads a word from any string a deserializer offers, without copying it when it is borrowed.
struct Words<T> {
    what: &'static str,
    word: std::marker::PhantomData<T>,
}

impl<T> Words<T> {
    fn new(what: &'static str) -> Self {
        Words { what, word: std::marker::PhantomData }
    }
}

impl<T: for<'a> From<&'a str>> Visitor<'_> for Words<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        Ok(T::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_word_reads_back_as_itself() {
        for status in OrderStatus::KNOWN {
            assert_eq!(&OrderStatus::from(status.as_str()), status);
            assert_eq!(FactStatus::from(status.as_str()), FactStatus::Ordered(status.clone()));
        }
        for kind in ReceiptType::KNOWN {
            assert_eq!(&ReceiptType::from(kind.as_str()), kind);
        }
        for status in ReceiptStatus::KNOWN {
            assert_eq!(&ReceiptStatus::from(status.as_str()), status);
        }
        for kind in SettlementType::KNOWN {
            assert_eq!(&SettlementType::from(kind.as_str()), kind);
        }
        for status in SettlementStatus::KNOWN {
            assert_eq!(&SettlementStatus::from(status.as_str()), status);
        }
        for status in [FactStatus::Confirmed, FactStatus::Cancelled, FactStatus::Returned] {
            assert_eq!(FactStatus::from(status.as_str()), status);
        }
        for sale_type in [SaleType::Sale, SaleType::Refund] {
            assert_eq!(SaleType::try_from(sale_type.as_str()), Ok(sale_type));
        }
    }

    #[test]
    fn an_unknown_word_is_kept_as_sent_except_a_sale_type() {
        let status: OrderStatus = serde_json::from_str("\"TELEPORTED\"").expect("an open vocabulary");
        assert_eq!(status, OrderStatus::Unknown("TELEPORTED".into()));
        assert_eq!(serde_json::to_string(&status).expect("a string"), "\"TELEPORTED\"");
        assert!(!status.is_known());
        let refused = serde_json::from_str::<SaleType>("\"GIFT\"").expect_err("a closed vocabulary");
        assert!(refused.to_string().contains("unknown sale type \"GIFT\""), "{refused}");
    }
}
