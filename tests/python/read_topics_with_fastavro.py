"""Reads the pipeline's Avro messages as a team outside the project would: with fastavro and the .avsc
files only, nothing of ours.

Every .avsc file is parsed with fastavro and fingerprinted with fastavro's CRC-64-AVRO of its Parsing
Canonical Form. Every message (Avro single-object encoding: C3 01, the 8-byte little-endian
fingerprint, the datum) must name one of those schemas, decode with fastavro's schemaless_reader with
no byte left over, be of the record type its topic carries, and hold the field values the Rust side
decoded. The raw records that the transform's changelog keeps inside its state (bytes fields) are
single-object records too, and are read the same way.

Usage: python read_topics_with_fastavro.py SCHEMA_DIR MESSAGES_JSONL
MESSAGES_JSONL has one message per line:
  {"topic": "...", "payload": "<hex>", "record": "OrderSheetEvent",
   "fields": {"order_id": 1, "facts/0/version": 3, ...}, "lengths": {"items": 2}, "nested": ["boxes", ...]}
Timestamps (timestamp-millis) are compared as epoch milliseconds and dates as days since 1970-01-01:
fastavro returns them as datetime and date objects.

Prints what it read, and as its last line a JSON summary the Rust test checks; exits 1 with the reason
on the first message it cannot read.
"""

import datetime
import io
import json
import pathlib
import sys

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class Unreadable(Exception):
    """A message a standard reader cannot read: the test fails with this reason."""


def load_schemas(schema_dir):
    """fingerprint bytes -> (file name, full name, parsed schema), for every .avsc in schema_dir."""
    by_fingerprint = {}
    for path in sorted(pathlib.Path(schema_dir).glob("*.avsc")):
        # A fresh named-types scope per file: versions of one schema define the same names.
        parsed = parse_schema(json.loads(path.read_text(encoding="utf-8")), named_schemas={})
        hex_fingerprint = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
        # fastavro's hex is the fingerprint's bytes in little-endian order: what the header holds.
        key = bytes.fromhex(hex_fingerprint)
        if key in by_fingerprint:
            # Two versions that differ in nothing that matters to reading (a doc, say): one schema.
            earlier, full_name, schema = by_fingerprint[key]
            by_fingerprint[key] = (f"{earlier} = {path.name}", full_name, schema)
        else:
            by_fingerprint[key] = (path.name, parsed["name"], parsed)
        print(f"  {path.name:32} {hex_fingerprint}  {parsed['name']}")
    if not by_fingerprint:
        raise Unreadable(f"no .avsc file in {schema_dir}")
    return by_fingerprint


def read_single_object(payload, schemas, what):
    """Decodes one single-object record; returns (schema file, full name, record)."""
    if len(payload) < HEADER_LEN or payload[:2] != MAGIC:
        raise Unreadable(f"{what}: not single-object encoded (starts {payload[:HEADER_LEN].hex()})")
    found = schemas.get(payload[2:HEADER_LEN])
    if found is None:
        raise Unreadable(f"{what}: fingerprint {payload[2:HEADER_LEN].hex()} is none of the .avsc files'")
    file_name, full_name, schema = found
    datum = io.BytesIO(payload[HEADER_LEN:])
    try:
        record = fastavro.schemaless_reader(datum, schema, None)
    except Exception as error:  # fastavro raises several types for a malformed datum
        raise Unreadable(f"{what}: {file_name} does not decode it: {error!r}") from error
    left_over = len(payload) - HEADER_LEN - datum.tell()
    if left_over:
        raise Unreadable(f"{what}: {left_over} bytes left over after the {file_name} datum")
    return file_name, full_name, record


def plain(value):
    """A decoded value in the Rust side's terms: epoch milliseconds, days since 1970-01-01."""
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, datetime.date):
        return (value - EPOCH.date()).days
    return value


def lookup(record, field):
    """A field's value; `facts/1/version` names a field of an array's item."""
    value = record
    for part in field.split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def main(schema_dir, messages_path):
    print(f"fastavro {fastavro.__version__}; schemas of {schema_dir}:")
    schemas = load_schemas(schema_dir)
    decoded, nested, checked = {}, 0, 0
    files_used = {}
    with open(messages_path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            message = json.loads(line)
            topic = message["topic"]
            what = f"message {number} of {topic}"
            file_name, full_name, record = read_single_object(bytes.fromhex(message["payload"]), schemas, what)
            if full_name.rsplit(".", 1)[-1] != message["record"]:
                raise Unreadable(f"{what}: a {full_name} ({file_name}) where {message['record']} was written")
            for field, expected in message["fields"].items():
                value = lookup(record, field)
                if plain(value) != expected:
                    raise Unreadable(f"{what}: {field} is {value!r}, the Rust side read {expected!r}")
                checked += 1
            for field, expected in message["lengths"].items():
                if len(record[field]) != expected:
                    raise Unreadable(f"{what}: {field} has {len(record[field])} items, the Rust side read {expected}")
                checked += 1
            for field in message["nested"]:
                for i, inner in enumerate(record[field]):
                    read_single_object(inner, schemas, f"{what}, {field}[{i}]")
                    nested += 1
            decoded[topic] = decoded.get(topic, 0) + 1
            files_used.setdefault(topic, set()).add(file_name)
    for topic, count in decoded.items():
        print(f"  {topic:20} {count:6} messages decoded, nothing left over ({', '.join(sorted(files_used[topic]))})")
    print(f"  {nested} records inside the changelog's states decoded; {checked} field values match the Rust side")
    print(json.dumps({"decoded": decoded, "nested": nested, "checked": checked}))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        main(sys.argv[1], sys.argv[2])
    except Unreadable as reason:
        print(f"fastavro cannot read our topics: {reason}", file=sys.stderr)
        sys.exit(1)
