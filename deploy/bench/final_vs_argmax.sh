#!/bin/bash
# FINAL vs argMax on 1M keys × 2 versions, ClickHouse 18.16 on this machine.
set -e
cd "$(dirname "$0")/../.."
eval "$(deploy/services.sh env)"
q(){ curl -sS http://127.0.0.1:8123/ --data-binary "$1"; }
cat > "${TMPDIR:-/tmp}/bench_final.toml" <<TOML
[clickhouse]
url = "http://127.0.0.1:8123"
database = "bench_final"
TOML
q "DROP DATABASE IF EXISTS bench_final"
target/debug/coupang-etl --config "${TMPDIR:-/tmp}/bench_final.toml" migrate >/dev/null 2>&1
for v in 1 2; do
q "INSERT INTO bench_final.payment_facts (vendor_id, account_alias, order_id, vendor_item_id, shipment_box_id, vendor_item_name, payment_date, paid_at, status, quantity, cancelled_quantity, order_price, shipping_fee, seller_coupon_discount, coupang_coupon_discount, payment_amount, provisional, cancelled, event_time, version) SELECT concat('A0000000', toString(number % 5)), 'bench', intDiv(number, 2), number % 2, number, 'item', toDate('2026-01-01') + (number % 300), toDateTime('2026-01-01 00:00:00'), 'INSTRUCT', 1, 0, 1000 * $v, 0, 0, 0, 1000 * $v, 1, 0, toDateTime('2026-01-01 00:00:00'), $v FROM system.numbers LIMIT 1000000"
done
final="SELECT vendor_id, payment_date, sum(payment_amount) FROM bench_final.payment_facts FINAL GROUP BY vendor_id, payment_date FORMAT Null"
argmax="SELECT vendor_id, day, sum(amount) FROM (SELECT vendor_id, order_id, vendor_item_id, argMax(payment_date, version) AS day, argMax(payment_amount, version) AS amount FROM bench_final.payment_facts GROUP BY vendor_id, order_id, vendor_item_id) GROUP BY vendor_id, day FORMAT Null"
check_f="SELECT sum(payment_amount) FROM bench_final.payment_facts FINAL"
check_a="SELECT sum(amount) FROM (SELECT argMax(payment_amount, version) AS amount FROM bench_final.payment_facts GROUP BY vendor_id, order_id, vendor_item_id)"
echo "FINAL sum: $(q "$check_f")  argMax sum: $(q "$check_a")"
for name in final argmax; do
  sql=${!name}
  for i in 1 2 3 4 5; do
    s=$(date +%s.%N); q "$sql"; e=$(date +%s.%N)
    echo "$name $(echo "$e - $s" | bc)"
  done
done
q "DROP DATABASE bench_final"
