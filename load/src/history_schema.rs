//! The facts' history (migrations 11–13): why each version changed, and every version kept.
//!
//! The history is fed by a materialized view on `payment_facts` rather than by a second INSERT of the
//! loader: the server writes both in one INSERT, so the history can never miss a version the table
//! got, nor hold one it did not, and a retried INSERT the server drops as a duplicate (≥ 22.8) is
//! dropped for the history too. Where duplicates do land (18.16 has no deduplication tokens), the
//! key includes the version, so they collapse when parts merge and `FINAL` reads each version once.

/// Why a version differs from the one before (the transform's cause; `UNRECORDED` before v2 facts).
pub(crate) const CHANGE_CAUSE: &str = "
ALTER TABLE {db}.payment_facts ADD COLUMN change_cause String DEFAULT 'UNRECORDED'
COMMENT 'Why this version differs from the one before: NEW_ORDER, STATUS, CONFIRMATION, CANCEL, RETURN, REFUND, WITHDRAWAL, CORRECTION, UNCHANGED (another item of the order changed), UNRECORDED (loaded before causes were)'";

/// The item's amount in the version before.
pub(crate) const PREVIOUS_AMOUNT: &str = "
ALTER TABLE {db}.payment_facts ADD COLUMN previous_payment_amount Nullable(Int64)
COMMENT 'KRW: payment_amount of the version before; NULL for a new order and for versions loaded before causes were'";

/// Every version of every fact, with when it was loaded; the history of `daily_payments`.
pub(crate) const HISTORY: &str = "
CREATE TABLE IF NOT EXISTS {db}.payment_fact_history (
    vendor_id String COMMENT 'Coupang vendor code',
    account_alias String COMMENT 'The account alias in the coupang-etl config when collected',
    order_id Int64 COMMENT 'Coupang orderId',
    vendor_item_id Int64 COMMENT 'Coupang vendorItemId',
    shipment_box_id Int64 COMMENT 'Shipment box',
    vendor_item_name String COMMENT 'Item name as ordered',
    payment_date Date COMMENT 'Payment day in Korea time',
    paid_at DateTime('Asia/Seoul') COMMENT 'Payment time',
    status String COMMENT 'As in payment_facts',
    quantity Int32 COMMENT 'Units ordered',
    cancelled_quantity Int32 COMMENT 'Units cancelled or returned',
    order_price Int64 COMMENT 'KRW',
    shipping_fee Int64 COMMENT 'KRW',
    seller_coupon_discount Int64 COMMENT 'KRW',
    coupang_coupon_discount Int64 COMMENT 'KRW',
    payment_amount Int64 COMMENT 'KRW: the amount of this version',
    previous_payment_amount Nullable(Int64) COMMENT 'KRW: the amount of the version before (NULL: none, or not recorded)',
    provisional UInt8 COMMENT '1 until purchase confirmation',
    cancelled UInt8 COMMENT '1 when every unit was undone',
    change_cause String COMMENT 'Why this version differs from the one before',
    event_time DateTime('Asia/Seoul') COMMENT 'Source time of the change',
    version UInt64 COMMENT 'Row version; with the key, names one version',
    loaded_at DateTime COMMENT 'When the loader inserted this version: the moment it became known'
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(payment_date)
ORDER BY (vendor_id, payment_date, order_id, vendor_item_id, version)";

/// The feed: each INSERT into `payment_facts` also lands in the history.
pub(crate) const HISTORY_FEED: &str = "
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.payment_fact_history_feed TO {db}.payment_fact_history AS
SELECT vendor_id, account_alias, order_id, vendor_item_id, shipment_box_id, vendor_item_name, payment_date, paid_at,
       status, quantity, cancelled_quantity, order_price, shipping_fee, seller_coupon_discount,
       coupang_coupon_discount, payment_amount, previous_payment_amount, provisional, cancelled, change_cause,
       event_time, version, loaded_at
FROM {db}.payment_facts";

/// The versions `payment_facts` still holds when the history starts (merges may have removed older
/// ones: those are not known any more). A version the feed also wrote collapses with its copy.
pub(crate) const HISTORY_SEED: &str = "
INSERT INTO {db}.payment_fact_history
SELECT vendor_id, account_alias, order_id, vendor_item_id, shipment_box_id, vendor_item_name, payment_date, paid_at,
       status, quantity, cancelled_quantity, order_price, shipping_fee, seller_coupon_discount,
       coupang_coupon_discount, payment_amount, previous_payment_amount, provisional, cancelled, change_cause,
       event_time, version, loaded_at
FROM {db}.payment_facts";
