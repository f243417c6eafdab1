-- coupang-etl on a ClickHouse cluster (for users who outgrow one server).
--
-- Not applied by `coupang-etl migrate`, which targets one server. Replace {cluster} with the cluster
-- name from your `remote_servers` config and {db} with the database (`clickhouse.database`); the
-- {shard}/{replica} macros come from each server's `macros` config. The loader then inserts into the
-- Distributed table `payment_facts` (point `clickhouse.url` at any node), and every view reads it.
--
-- Sharding by cityHash64(vendor_id, order_id) keeps all versions of a key on one shard, so the
-- ReplacingMergeTree there can merge them and FINAL stays correct per shard. Checked here: each
-- statement, without ON CLUSTER and with a plain engine, runs on ClickHouse 18.16 and 26.9, and its
-- local table has the loader's columns (tests/cluster_ddl.rs, tests/clickhouse_current.rs); on 26.9
-- every statement also parses as written. Not checked (no ZooKeeper or cluster here): replication and
-- Distributed routing. Run them on a real cluster first in a scratch database. On servers from 22.8
-- on, also apply migration 6's codecs to payment_facts_local (docs/operations.md).

CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER {cluster};

CREATE TABLE IF NOT EXISTS {db}.payment_facts_local ON CLUSTER {cluster} (
    vendor_id String,
    account_alias String,
    order_id Int64,
    vendor_item_id Int64,
    shipment_box_id Int64,
    vendor_item_name String,
    payment_date Date,
    paid_at DateTime('Asia/Seoul'),
    status String,
    quantity Int32,
    cancelled_quantity Int32,
    order_price Int64,
    shipping_fee Int64,
    seller_coupon_discount Int64,
    coupang_coupon_discount Int64,
    payment_amount Int64,
    provisional UInt8,
    cancelled UInt8,
    event_time DateTime('Asia/Seoul'),
    version UInt64,
    loaded_at DateTime DEFAULT now(),
    row_check UInt8 MATERIALIZED throwIf(
        quantity < 0 OR cancelled_quantity < 0 OR cancelled_quantity > quantity
        OR order_price < 0 OR shipping_fee < 0 OR seller_coupon_discount < 0 OR coupang_coupon_discount < 0
        OR payment_amount < 0
        OR payment_amount != order_price + shipping_fee - seller_coupon_discount - coupang_coupon_discount),
    change_cause String DEFAULT 'UNRECORDED',
    previous_payment_amount Nullable(Int64)
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{db}/payment_facts_local', '{replica}', version)
PARTITION BY toYYYYMM(payment_date)
ORDER BY (vendor_id, order_id, vendor_item_id);

CREATE TABLE IF NOT EXISTS {db}.payment_facts ON CLUSTER {cluster} AS {db}.payment_facts_local
ENGINE = Distributed({cluster}, {db}, payment_facts_local, cityHash64(vendor_id, order_id));

-- The views of load/src/schema.rs (item_payments, order_payments, daily_payments) are created on every
-- node unchanged: they read {db}.payment_facts FINAL, which on a Distributed table applies FINAL on
-- each shard. Because a key lives on one shard only, that is exact.
