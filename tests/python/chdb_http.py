"""Current ClickHouse (26.x, the engine inside PyPI's chdb) behind ClickHouse's HTTP interface, so the
pipeline's own Rust code -- migrations, the loader's RowBinary INSERTs with their settings, summaries --
runs unchanged against it. Used by tests/clickhouse_current.rs; not a production server.

What it speaks, as much of the HTTP interface as the `clickhouse` crate and the tests use:
- POST /?database=..&default_format=.. with the SQL as the body; a trailing `FORMAT X` in the SQL also
  chooses the output format (default TabSeparated);
- POST /?query=INSERT INTO t(cols) FORMAT RowBinary&decompress=1 with the data as the body, in
  ClickHouse's compressed-block framing (LZ4) or plain, chunked or not. ClickHouse 26 parses the bytes
  as they came (they are written to a file and read with `file(path, RowBinary)` into the table);
- every other URL parameter is a query setting (`insert_deduplication_token`, ...), applied with
  `SETTINGS`;
- errors: HTTP 500, `X-ClickHouse-Exception-Code`, the server's message as the body;
- GET /ping, and GET /test/stats (JSON: INSERTs executed, answers lost).

Faults for tests: `--lose-answers N` executes the first N INSERTs into `--lose-table` and then closes
the connection without answering, as a network failure after the server committed would.
`--keep-every-row` stops background merges of every table it creates and inserts with
`optimize_on_insert = 0` (which would otherwise keep only the newest version of a key within one
INSERT), so `count()` without FINAL shows every row that landed.

Usage: chdb_http.py --data DIR [--port 0] [--lose-answers N] [--lose-table T] [--keep-every-row]
Prints `listening on PORT` once ready.
"""

import argparse
import json
import os
import re
import struct
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.block
from chdb.session import Session

# URL parameters that are not query settings.
NOT_SETTINGS = {"query", "database", "default_format", "decompress", "compress", "query_id", "session_id",
                "user", "password", "role"}
LZ4 = 0x82
NONE = 0x02
INSERT = re.compile(r"^\s*INSERT\s+INTO\s+([\w.`\"]+)\s*\(([^)]*)\)\s*FORMAT\s+(\w+)\s*$", re.I | re.S)
TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.I)
CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.`\"]+)", re.I)
ERROR_CODE = re.compile(r"Code:\s*(\d+)")


def unframe(body: bytes) -> bytes:
    """The data of ClickHouse's compressed blocks: 16-byte checksum, method, compressed size (with the
    9-byte header), decompressed size, payload."""
    out, at = [], 0
    while at < len(body):
        method, compressed, size = struct.unpack_from("<BII", body, at + 16)
        payload = body[at + 25: at + 16 + compressed]
        if method == LZ4:
            out.append(lz4.block.decompress(payload, uncompressed_size=size))
        elif method == NONE:
            out.append(payload)
        else:
            raise ValueError(f"compression method {method:#x} is not supported here")
        at += 16 + compressed
    return b"".join(out)


def quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Engine:
    """One chdb session; ClickHouse runs one statement at a time here."""

    def __init__(self, data: str, keep_every_row: bool, lose_answers: int, lose_table: str):
        self.session = Session(data)
        self.data = data
        self.lock = threading.Lock()
        self.keep_every_row = keep_every_row
        self.lose_answers = lose_answers
        self.lose_table = lose_table
        self.stats = {"inserts": 0, "lost_answers": 0}

    def run(self, sql: str, database: str, fmt: str) -> bytes:
        with self.lock:
            self.session.query(f"USE {database or 'default'}")
            result = self.session.query(sql, fmt)
            created = CREATE_TABLE.match(sql)
            if created and self.keep_every_row:
                self.session.query(f"SYSTEM STOP MERGES {created.group(1)}")
            return result.bytes() if result is not None else b""

    def insert(self, table: str, columns: str, fmt: str, data: bytes, settings: str, database: str) -> bool:
        """Inserts `data`; False when the answer is to be lost."""
        if self.keep_every_row:
            settings = f"{settings}, optimize_on_insert = 0" if settings else "SETTINGS optimize_on_insert = 0"
        fd, path = tempfile.mkstemp(dir=self.data, suffix=".rowbinary")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            sql = f"INSERT INTO {table} ({columns}) {settings} SELECT * FROM file({quoted(path)}, {quoted(fmt)})"
            self.run(sql, database, "TabSeparated")
        finally:
            os.unlink(path)
        with self.lock:
            self.stats["inserts"] += 1
            if table.strip("`\"").split(".")[-1] == self.lose_table and self.stats["lost_answers"] < self.lose_answers:
                self.stats["lost_answers"] += 1
                return False
        return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: Engine = None

    def log_message(self, *args):
        pass

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status: int, body: bytes, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/ping":
            return self.answer(200, b"Ok.\n")
        if path == "/test/stats":
            return self.answer(200, json.dumps(self.engine.stats).encode())
        self.do_POST()

    def do_POST(self):
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        body = self.body()
        database = params.get("database", "")
        settings = [(k, v) for k, v in params.items() if k not in NOT_SETTINGS]
        clause = ("SETTINGS " + ", ".join(f"{k} = {quoted(v)}" for k, v in settings)) if settings else ""
        try:
            if "query" in params:
                insert = INSERT.match(params["query"])
                if not insert:
                    raise ValueError("this shim takes only `INSERT INTO t(cols) FORMAT X` in the URL")
                data = unframe(body) if params.get("decompress") == "1" else body
                table, columns, fmt = insert.groups()
                if not self.engine.insert(table, columns, fmt, data, clause, database):
                    self.close_connection = True
                    return
                return self.answer(200, b"")
            sql = body.decode()
            fmt = params.get("default_format", "TabSeparated")
            trailing = TRAILING_FORMAT.search(sql)
            if trailing:
                fmt, sql = trailing.group(1), sql[: trailing.start()]
            if settings:
                if not re.match(r"^\s*(SELECT|WITH|DESCRIBE|DESC|SHOW)\b", sql, re.I):
                    raise ValueError(f"settings {settings} on a statement other than SELECT, DESCRIBE or SHOW")
                sql = f"{sql} {clause}"
            return self.answer(200, self.engine.run(sql, database, fmt))
        except (chdb.ChdbError, ValueError, RuntimeError) as error:
            message = str(error)
            code = ERROR_CODE.search(message)
            self.answer(500, (message + "\n").encode(), [("X-ClickHouse-Exception-Code", code.group(1) if code else "1001")])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lose-answers", type=int, default=0)
    parser.add_argument("--lose-table", default="payment_facts")
    parser.add_argument("--keep-every-row", action="store_true")
    args = parser.parse_args()
    Handler.engine = Engine(args.data, args.keep_every_row, args.lose_answers, args.lose_table)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
