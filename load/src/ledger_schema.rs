//! The ledger's tables and the reconciliation view (migrations 7–9). Written for ClickHouse 18.16 and
//! current servers alike: `ANY LEFT JOIN … USING`, `UNION ALL` of identically typed columns, and inner
//! selects that rename columns so outer aliases never shadow them (old servers resolve aliases
//! query-wide).

/// One row per revenue-history row (key: vendor, order, sale type, recognition day, same-day rank); the
/// newest collection wins. Partitioned by recognition month, like the reconciliation reads it.
pub(crate) const REVENUE_ROWS: &str = "
CREATE TABLE IF NOT EXISTS {db}.revenue_rows (
    vendor_id String COMMENT 'Coupang vendor code',
    account_alias String COMMENT 'The account alias in the coupang-etl config when the row was collected',
    order_id Int64 COMMENT 'Coupang orderId; 0 for a settlement adjustment that belongs to no order',
    sale_type String COMMENT 'SALE or REFUND',
    recognition_date Date COMMENT 'Revenue recognition day (purchase confirmation, or the refund)',
    same_day_row Int32 COMMENT 'Rank among rows of one order, sale type and recognition day',
    sale_date Date COMMENT 'The payment day',
    quantity Int64 COMMENT 'Units (negative on REFUND rows)',
    sale_price Int64 COMMENT 'KRW: unit price x quantity, summed over the items',
    seller_discount_coupon Int64 COMMENT 'KRW: seller-funded instant coupons',
    downloadable_coupon Int64 COMMENT 'KRW: seller-funded downloadable coupons',
    coupang_discount_coupon Int64 COMMENT 'KRW: Coupang-funded coupons',
    delivery_fee Int64 COMMENT 'KRW: shipping fee',
    total_sale Int64 COMMENT 'KRW: sales less seller coupons, plus shipping (what a payout''s totalSale counts)',
    service_fee Int64 COMMENT 'KRW: commission and its VAT on items and shipping',
    settlement_amount Int64 COMMENT 'KRW: total_sale - service_fee (what a payout''s settlementTargetAmount counts)',
    settlement_known UInt8 COMMENT '0 when collected before the shipping settlement was (the amount then assumes no fee on shipping)',
    version UInt64 COMMENT 'When it was collected (ms): the newest collection wins',
    loaded_at DateTime DEFAULT now() COMMENT 'When the loader inserted this version'
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(recognition_date)
ORDER BY (vendor_id, order_id, sale_type, recognition_date, same_day_row)";

/// Like `payment_facts` (migration 5): the loader's INSERTs carry a deduplication token, which a
/// single-node MergeTree only honours with a window.
pub(crate) const LEDGER_DEDUPLICATION_WINDOW: [&str; 2] = [
    "ALTER TABLE {db}.revenue_rows MODIFY SETTING non_replicated_deduplication_window = 1000",
    "ALTER TABLE {db}.settlements MODIFY SETTING non_replicated_deduplication_window = 1000",
];

/// One row per payout cycle (key: vendor, type, recognition range: Coupang gives a payout no id); the
/// newest collection wins, so a scheduled (SUBJECT) payout is replaced once it is paid (DONE).
pub(crate) const SETTLEMENTS: &str = "
CREATE TABLE IF NOT EXISTS {db}.settlements (
    vendor_id String COMMENT 'Coupang vendor code',
    account_alias String COMMENT 'The account alias in the coupang-etl config when the row was collected',
    settlement_type String COMMENT 'WEEKLY, MONTHLY, DAILY, RESERVE, ADDITIONAL, or a newer word as sent',
    recognition_date_from Date COMMENT 'First revenue-recognition day the payout covers',
    recognition_date_to Date COMMENT 'Last revenue-recognition day the payout covers',
    recognition_month Date COMMENT 'First day of the revenue-recognition month',
    settlement_date Date COMMENT 'The (scheduled) payout day',
    total_sale Int64 COMMENT 'KRW: sales + shipping - cancels - seller coupons',
    service_fee Int64 COMMENT 'KRW: commission',
    settlement_target_amount Int64 COMMENT 'KRW: total_sale - service_fee',
    settlement_amount Int64 COMMENT 'KRW: paid in this cycle (70% of the target on WEEKLY rows; the 30% held back on RESERVE rows)',
    last_amount Int64 COMMENT 'KRW: held back for the RESERVE payout',
    pending_released_amount Int64 COMMENT 'KRW: released from hold into this payout',
    seller_discount_coupon Int64 COMMENT 'KRW',
    downloadable_coupon Int64 COMMENT 'KRW',
    seller_service_fee Int64 COMMENT 'KRW: the monthly seller service fee',
    deduction_amount Int64 COMMENT 'KRW: deductions, a subtotal that includes the seller service fee',
    debt_of_last_week Int64 COMMENT 'KRW',
    final_amount Int64 COMMENT 'KRW: what reached (or will reach) the bank account',
    status String COMMENT 'DONE (paid) or SUBJECT (scheduled)',
    version UInt64 COMMENT 'When it was collected (ms): the newest collection wins',
    loaded_at DateTime DEFAULT now() COMMENT 'When the loader inserted this version'
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(recognition_month)
ORDER BY (vendor_id, settlement_type, recognition_date_from, recognition_date_to)";

/// Per account and revenue-recognition month: our payment facts, revenue-history and the payouts side
/// by side, each gap with a named reason, and a status (docs/analysts.md explains every column).
///
/// Each source adds named figures (`figure`, `won`) for its account and month, and the middle select
/// sums each figure. Then:
/// - `target_gap`: the payout cycles' targets against revenue-history's settlement amounts over the
///   days those cycles cover. Exact: any difference is unexplained.
/// - `reserve_gap`: the RESERVE row's target against the whole month's revenue. Exact.
/// - `rounding`: paid (cycles + RESERVE, or what is held back until the RESERVE comes) against the
///   target; up to 1 won per payout row is rounding of the 70/30 split, more is unexplained.
/// - `payment_day_gap`: revenue-history of the sales paid in the month (by payment day) against our
///   confirmed payments of the month plus the Coupang-funded coupons they carry: 0 once every payment
///   of the month was recognised and collected; informational, it does not set the status.
/// - `tied`: no gap, no rounding, and the month is paid in full (its RESERVE came, every recognised won
///   is in a payout). Deductions and additional payouts are named in `reasons` but do not untie it.
/// - explained, never a gap: revenue not yet in a payout, the reserve held back, deductions (the
///   seller service fee and others), additional payouts, provisional payments not yet recognised.
pub(crate) const RECONCILIATION: &str = "
CREATE VIEW IF NOT EXISTS {db}.reconciliation AS
SELECT
    vendor_id, month, account_alias,
    payments, provisional_payments, confirmed_payments, confirmed_coupang_coupons, revenue_by_payment_day,
    revenue_total_sale, revenue_seller_coupons, revenue_coupang_coupons, revenue_service_fee,
    revenue_settlement, revenue_refunds, revenue_rows_without_shipping_settlement,
    payout_cycles, cycle_target, revenue_in_cycles, cycle_paid, held_back,
    reserve_rows, reserve_target, reserve_paid, deductions, seller_service_fee, pending_released,
    final_amount, scheduled_amount, additional_paid,
    revenue_by_payment_day - confirmed_payments - confirmed_coupang_coupons AS payment_day_gap,
    cycle_target - revenue_in_cycles AS target_gap,
    if(reserve_rows > 0, reserve_target - revenue_settlement, 0) AS reserve_gap,
    revenue_settlement - revenue_in_cycles AS not_yet_in_payout,
    if(reserve_rows > 0, 0, held_back) AS reserve_held_back,
    cycle_paid + if(reserve_rows > 0, reserve_paid, held_back) - cycle_target AS rounding,
    abs(rounding) <= payout_cycles + reserve_rows AS rounding_ok,
    target_gap + reserve_gap + if(rounding_ok, 0, rounding) AS unexplained,
    multiIf(target_gap != 0 OR reserve_gap != 0 OR NOT rounding_ok, 'unexplained',
            reserve_rows > 0 AND not_yet_in_payout = 0 AND rounding = 0, 'tied',
            'explained') AS status,
    arrayStringConcat(arrayFilter(reason -> reason != '', [
        if(target_gap != 0, concat('payouts differ from revenue-history by ', toString(target_gap)), ''),
        if(reserve_gap != 0, concat('the reserve differs from the month by ', toString(reserve_gap)), ''),
        if(NOT rounding_ok, concat('paid differs from the target by ', toString(rounding)), ''),
        if(revenue_rows_without_shipping_settlement > 0,
           concat(toString(revenue_rows_without_shipping_settlement), ' revenue rows collected without their shipping settlement'), ''),
        if(not_yet_in_payout != 0, concat('not yet in a payout ', toString(not_yet_in_payout)), ''),
        if(reserve_held_back != 0, concat('reserve held back ', toString(reserve_held_back)), ''),
        if(seller_service_fee != 0, concat('seller service fee ', toString(seller_service_fee)), ''),
        if(deductions - seller_service_fee != 0, concat('other deductions ', toString(deductions - seller_service_fee)), ''),
        if(additional_paid != 0, concat('additional payouts ', toString(additional_paid)), ''),
        if(rounding_ok AND rounding != 0, concat('rounding ', toString(rounding)), ''),
        if(revenue_refunds != 0, concat('refunds ', toString(revenue_refunds)), ''),
        if(provisional_payments != 0, concat('provisional, not yet recognised ', toString(provisional_payments)), '')
    ]), '; ') AS reasons
FROM (
    SELECT
        vendor_id, month,
        max(alias) AS account_alias,
        sumIf(won, figure = 'payments') AS payments,
        sumIf(won, figure = 'provisional') AS provisional_payments,
        sumIf(won, figure = 'confirmed') AS confirmed_payments,
        sumIf(won, figure = 'confirmed_coupang') AS confirmed_coupang_coupons,
        sumIf(won, figure = 'by_payment_day') AS revenue_by_payment_day,
        sumIf(won, figure = 'sale') AS revenue_total_sale,
        sumIf(won, figure = 'seller_coupons') AS revenue_seller_coupons,
        sumIf(won, figure = 'coupang_coupons') AS revenue_coupang_coupons,
        sumIf(won, figure = 'service_fee') AS revenue_service_fee,
        sumIf(won, figure = 'settlement') AS revenue_settlement,
        sumIf(won, figure = 'refunds') AS revenue_refunds,
        sumIf(won, figure = 'unknown_shipping') AS revenue_rows_without_shipping_settlement,
        sumIf(won, figure = 'in_cycles') AS revenue_in_cycles,
        sumIf(won, figure = 'cycles') AS payout_cycles,
        sumIf(won, figure = 'cycle_target') AS cycle_target,
        sumIf(won, figure = 'cycle_paid') AS cycle_paid,
        sumIf(won, figure = 'held_back') AS held_back,
        sumIf(won, figure = 'reserves') AS reserve_rows,
        sumIf(won, figure = 'reserve_target') AS reserve_target,
        sumIf(won, figure = 'reserve_paid') AS reserve_paid,
        sumIf(won, figure = 'deductions') AS deductions,
        sumIf(won, figure = 'seller_service_fee') AS seller_service_fee,
        sumIf(won, figure = 'released') AS pending_released,
        sumIf(won, figure = 'final') AS final_amount,
        sumIf(won, figure = 'scheduled') AS scheduled_amount,
        sumIf(won, figure = 'additional') AS additional_paid
    FROM (
        SELECT vendor_id, month, alias, tupleElement(measure, 1) AS figure, tupleElement(measure, 2) AS won
        FROM (
            SELECT vendor_id, toStartOfMonth(payment_date) AS month, account_alias AS alias, arrayJoin([
                ('payments', toInt64(payment_amount)),
                ('provisional', toInt64(if(provisional = 1, payment_amount, 0))),
                ('confirmed', toInt64(if(provisional = 0, payment_amount, 0))),
                ('confirmed_coupang', toInt64(if(provisional = 0, coupang_coupon_discount, 0)))]) AS measure
            FROM {db}.payment_facts FINAL
        )
        UNION ALL
        SELECT vendor_id, toStartOfMonth(sale_date) AS month, account_alias AS alias,
               'by_payment_day' AS figure, toInt64(total_sale) AS won
        FROM {db}.revenue_rows FINAL
        WHERE order_id != 0
        UNION ALL
        SELECT vendor_id, month, alias, tupleElement(measure, 1) AS figure, tupleElement(measure, 2) AS won
        FROM (
            SELECT vendor_id, month, alias, arrayJoin([
                ('sale', toInt64(sale)),
                ('seller_coupons', toInt64(seller)),
                ('coupang_coupons', toInt64(coupang)),
                ('service_fee', toInt64(fee)),
                ('settlement', toInt64(settled)),
                ('refunds', toInt64(if(kind = 'REFUND', settled, 0))),
                ('unknown_shipping', toInt64(1 - known)),
                ('in_cycles', toInt64(if(day <= covered_to, settled, 0)))]) AS measure
            FROM (
                SELECT vendor_id, toStartOfMonth(recognition_date) AS month, account_alias AS alias,
                       recognition_date AS day, sale_type AS kind, total_sale AS sale,
                       seller_discount_coupon + downloadable_coupon AS seller, coupang_discount_coupon AS coupang,
                       service_fee AS fee, settlement_amount AS settled, settlement_known AS known
                FROM {db}.revenue_rows FINAL
            ) AS revenue ANY LEFT JOIN (
                SELECT vendor_id, recognition_month AS month, max(recognition_date_to) AS covered_to
                FROM {db}.settlements FINAL
                WHERE settlement_type NOT IN ('RESERVE', 'ADDITIONAL')
                GROUP BY vendor_id, recognition_month
            ) AS coverage USING (vendor_id, month)
        )
        UNION ALL
        SELECT vendor_id, month, alias, tupleElement(measure, 1) AS figure, tupleElement(measure, 2) AS won
        FROM (
            SELECT vendor_id, recognition_month AS month, account_alias AS alias, arrayJoin([
                ('cycles', toInt64(is_cycle)),
                ('cycle_target', toInt64(if(is_cycle, settlement_target_amount, 0))),
                ('cycle_paid', toInt64(if(is_cycle, settlement_amount, 0))),
                ('held_back', toInt64(if(is_cycle, last_amount, 0))),
                ('reserves', toInt64(is_reserve)),
                ('reserve_target', toInt64(if(is_reserve, settlement_target_amount, 0))),
                ('reserve_paid', toInt64(if(is_reserve, settlement_amount, 0))),
                ('deductions', toInt64(deduction_amount)),
                ('seller_service_fee', toInt64(seller_service_fee)),
                ('released', toInt64(pending_released_amount)),
                ('final', toInt64(final_amount)),
                ('scheduled', toInt64(if(status = 'SUBJECT', final_amount, 0))),
                ('additional', toInt64(if(settlement_type = 'ADDITIONAL', settlement_amount, 0)))]) AS measure
            FROM (
                SELECT *, settlement_type = 'RESERVE' AS is_reserve,
                       settlement_type NOT IN ('RESERVE', 'ADDITIONAL') AS is_cycle
                FROM {db}.settlements FINAL
            )
        )
    )
    GROUP BY vendor_id, month
)";
