"""What ClickHouse 26.9's newer storage features buy payment_facts, measured on the pipeline's facts.

The table under test is the loader's own: `coupang-etl migrate` runs against ClickHouse 26.9 (chdb
in-process, served over HTTP by tests/python/chdb_http.py), and its `SHOW CREATE TABLE` is the
"migrated" design. The facts are every stored row of `<database>.payment_facts` on the 18.16 server
(a bench's or the demo's database: `--database`, default the largest there). They are loaded as one
INSERT per `--batch` rows with merges stopped, as the loader leaves them, into:

  plain      the migrated table without its codecs (what migrations 1-5 make, and 18.16 has)
  migrated   the table as migrated on 26.9 (migration 6's codecs)
  lowcard    migrated + LowCardinality(String) for vendor_id, account_alias and status

and prints, per design, the compressed bytes before and after OPTIMIZE FINAL, and the time of the
daily aggregation through FINAL with `do_not_merge_across_partitions_select_final` 0 and 1 (median of
11 runs each, on the unmerged parts), then the merged bytes per column.

Usage: $COUPANG_ETL_PYTHON deploy/bench/clickhouse_26.py [--database DB] [--batch 20000] [--copies 1]
       [--binary PATH]
(`cargo build`, `eval "$(deploy/python.sh)"` and `deploy/services.sh start` first.)
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
import chdb_http  # noqa: E402

CLICKHOUSE = os.environ.get("COUPANG_ETL_TEST_CLICKHOUSE", "http://127.0.0.1:8123")
LOW_CARDINALITY = ["vendor_id", "account_alias", "status"]
RUNS = 11
DAILY = """SELECT vendor_id, payment_date, sum(payment_amount), sumIf(payment_amount, provisional = 1)
FROM {table} FINAL GROUP BY vendor_id, payment_date FORMAT Null"""
# A CODEC(...) clause, with its nested parentheses.
CODEC = re.compile(r" CODEC\((?:[^()]|\([^()]*\))*\)")


def server(sql: str) -> bytes:
    with urllib.request.urlopen(CLICKHOUSE, data=sql.encode()) as response:
        return response.read()


def largest_database() -> str:
    return server("SELECT database FROM system.parts WHERE table = 'payment_facts' AND active "
                  "GROUP BY database ORDER BY sum(rows) DESC LIMIT 1").decode().strip()


def migrated_table(engine: chdb_http.Engine, binary: str) -> str:
    """`coupang-etl migrate` against ClickHouse 26.9; the DDL of the table it made."""
    chdb_http.Handler.engine = engine
    http = ThreadingHTTPServer(("127.0.0.1", 0), chdb_http.Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    env = dict(os.environ, COUPANG_ETL__CLICKHOUSE__URL=f"http://127.0.0.1:{http.server_address[1]}",
               COUPANG_ETL__CLICKHOUSE__DATABASE="bench")
    migrate = subprocess.run([binary, "migrate"], env=env, capture_output=True, text=True)
    if migrate.returncode != 0:
        sys.exit(f"coupang-etl migrate failed:\n{migrate.stdout}{migrate.stderr}")
    http.shutdown()
    return engine.run("SHOW CREATE TABLE bench.payment_facts", "", "TSVRaw").decode()


def design(ddl: str, name: str) -> str:
    ddl = ddl.replace("CREATE TABLE bench.payment_facts", f"CREATE TABLE bench.{name}", 1)
    if name == "plain":
        ddl = CODEC.sub("", ddl)
    if name == "lowcard":
        for column in LOW_CARDINALITY:
            ddl = ddl.replace(f"`{column}` String", f"`{column}` LowCardinality(String)", 1)
    return ddl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database")
    parser.add_argument("--batch", type=int, default=20000)
    parser.add_argument("--copies", type=int, default=1,
                        help="load the facts this many times, each copy's orders renumbered (a bigger shop)")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "debug", "coupang-etl"))
    args = parser.parse_args()
    database = args.database or largest_database()
    described = server(f"SELECT name, type, default_kind FROM system.columns "
                       f"WHERE database = '{database}' AND table = 'payment_facts' FORMAT TabSeparatedRaw")
    stored = [(name, kind) for name, kind, default_kind in
              (line.split("\t") for line in described.decode().strip().split("\n")) if default_kind != "MATERIALIZED"]
    columns = ", ".join(name for name, _ in stored)
    data = server(f"SELECT {columns} FROM {database}.payment_facts ORDER BY loaded_at, order_id FORMAT RowBinary")
    rows = int(server(f"SELECT count() FROM {database}.payment_facts").decode())
    print(f"{rows:,} stored rows of {database}.payment_facts from ClickHouse 18.16, "
          f"{len(data) / 2**20:.1f} MiB as RowBinary, loaded {args.copies}×; INSERTs of {args.batch:,} rows")
    work = tempfile.mkdtemp()
    engine = chdb_http.Engine(work, False, 0, "")
    ddl = migrated_table(engine, args.binary)
    session = engine.session
    print(f"ClickHouse {session.query('SELECT version()', 'TSV').bytes().decode().strip()} (chdb), "
          f"payment_facts as `coupang-etl migrate` made it")
    source = os.path.join(work, "facts.rowbinary")
    with open(source, "wb") as file:
        file.write(data)
    structure = ", ".join(f"{name} {kind}" for name, kind in stored).replace("'", "\\'")
    session.query(f"CREATE TABLE bench.source ENGINE = Memory AS SELECT *, rowNumberInAllBlocks() AS n "
                  f"FROM file('{source}', RowBinary, '{structure}')")
    print(f"{'design':<9} {'bytes':>12} {'merged':>12} {'FINAL':>9} {'FINAL, no cross-partition merge':>32}")
    for name in ["plain", "migrated", "lowcard"]:
        table = f"bench.{name}"
        session.query(design(ddl, name))
        session.query(f"SYSTEM STOP MERGES {table}")
        renumbered = columns.replace("order_id", "order_id + {copy} * 1000000000000 AS order_id", 1)
        for copy in range(args.copies):
            for start in range(0, rows, args.batch):
                session.query(f"INSERT INTO {table} ({columns}) SETTINGS optimize_on_insert = 0 "
                              f"SELECT {renumbered.format(copy=copy)} FROM bench.source "
                              f"WHERE n >= {start} AND n < {start + args.batch} ORDER BY n")
        size = f"SELECT sum(data_compressed_bytes) FROM system.parts WHERE database = 'bench' AND table = '{name}' AND active"
        unmerged = int(session.query(size, "TSV").bytes())
        times = {}
        for setting in (0, 1):
            runs = []
            for _ in range(RUNS):
                started = time.perf_counter()
                session.query(DAILY.format(table=table) + f" SETTINGS do_not_merge_across_partitions_select_final = {setting}")
                runs.append(time.perf_counter() - started)
            times[setting] = statistics.median(runs)
        session.query(f"SYSTEM START MERGES {table}")
        session.query(f"OPTIMIZE TABLE {table} FINAL")
        merged = int(session.query(size, "TSV").bytes())
        print(f"{name:<9} {unmerged:>12,} {merged:>12,} {times[0]:>8.3f}s {times[1]:>31.3f}s")
    per_column = session.query(
        "SELECT name, sumIf(data_compressed_bytes, table = 'plain') AS plain, "
        "sumIf(data_compressed_bytes, table = 'migrated') AS migrated FROM system.columns WHERE database = 'bench' "
        "AND table IN ('plain', 'migrated') GROUP BY name ORDER BY plain DESC", "TSV").bytes().decode().strip()
    print("merged bytes per column, plain -> migrated:")
    for line in per_column.split("\n"):
        column, plain, migrated = line.split("\t")
        print(f"  {column:<24} {int(plain):>11,} -> {int(migrated):>11,}")


if __name__ == "__main__":
    main()
