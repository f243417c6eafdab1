//! Avro single-object encoding over serde types.
//!
//! A record is `C3 01`, the writer schema's fingerprint (8 bytes), then the Avro datum. The fingerprint
//! is the one the Avro specification defines, so any standard reader (fastavro, Java's
//! `SchemaNormalization`, ...) finds the schema by it: CRC-64-AVRO of the schema's Parsing Canonical
//! Form, little-endian (see [`standard`]). Earlier releases wrote apache-avro 0.21's own fingerprint
//! instead, whose canonical form is not the specification's (logical types stay objects); those
//! records stay readable, as readers know both fingerprints of every schema.

use apache_avro::headers::HeaderBuilder;
use apache_avro::rabin::Rabin;
use apache_avro::{from_avro_datum, from_value, write_avro_datum_ref, GenericSingleObjectReader, Schema};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::TypeId;
use std::collections::HashMap;

use crate::datum::{from_datum, to_datum, write_long, Names, BLOCK_ITEMS};
use std::sync::{Mutex, OnceLock};

/// Single-object encoding marker (Avro spec, "Single-object encoding").
const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not an Avro single-object record (it needs the C3 01 marker and an 8-byte schema fingerprint; got {len} bytes)")]
    NotSingleObject { len: usize },
    #[error("{event}: written with an unknown schema (fingerprint {fingerprint})")]
    UnknownSchema { event: &'static str, fingerprint: String },
    #[error("{event}: Avro datum does not decode: {reason}")]
    Malformed { event: &'static str, reason: String },
    #[error("{event}: cannot encode: {reason}")]
    Encode { event: &'static str, reason: String },
}

/// An event with its schema history: the last entry is the current (writer) schema.
pub trait EventType: Serialize + DeserializeOwned + 'static {
    const NAME: &'static str;
    fn history() -> &'static [&'static str];

    /// Reads a datum of the current schema with a reader written by hand for its one shape, where the
    /// type has one (`readers.rs`): `None` when it has none, or when the datum does not read that way
    /// (the datum reader then reads it, or says what is wrong).
    fn read_current(_datum: &[u8]) -> Option<Self> {
        None
    }
}

struct Schemas {
    current: Schema,
    /// What every record is written with: the specification's fingerprint of the current schema.
    current_fingerprint: [u8; 8],
    /// apache-avro's fingerprint of the current schema, which records were written with before: read
    /// on the fast path too, so topics written before the switch cost nothing more to read.
    current_legacy_fingerprint: [u8; 8],
    /// Reads datums of the current schema with its names resolved once (`from_avro_datum` resolves
    /// them again on every call). It expects no header: ours is checked before, against both
    /// fingerprints.
    current_reader: GenericSingleObjectReader,
    /// Named types of the current schema, for the datum reader.
    current_names: Names,
    /// Both fingerprints (the specification's and apache-avro's) of every schema in the history.
    by_fingerprint: HashMap<[u8; 8], Schema>,
}

impl Schemas {
    fn is_current(&self, fingerprint: &[u8; 8]) -> bool {
        *fingerprint == self.current_fingerprint || *fingerprint == self.current_legacy_fingerprint
    }
}

/// The fingerprint records were written with until the specification's replaced it: CRC-64-AVRO of
/// apache-avro 0.21's canonical form (which keeps `{"type":"long"}` for a timestamp, and decimals'
/// precision and scale), little-endian like the specification's.
fn legacy_fingerprint(schema: &Schema) -> [u8; 8] {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}

/// A header of no bytes, so that apache-avro's single-object reader reads the bare datum: the codec
/// checks the header itself, and accepts two fingerprints where apache-avro would accept one.
struct NoHeader;

impl HeaderBuilder for NoHeader {
    fn build_header(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// Parsed schemas per event type, built once. The `.avsc` files are compiled in and tested, so a parse
/// failure is a build defect, not a runtime condition.
///
/// Every encode and decode asks for them, so each thread remembers what it was given: a short scan
/// by type instead of a lock and a string hash per call (5% of the transform's instructions).
fn schemas<T: EventType>() -> &'static Schemas {
    thread_local! {
        static SEEN: std::cell::RefCell<Vec<(TypeId, &'static Schemas)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let id = TypeId::of::<T>();
    if let Some(known) = SEEN.with_borrow(|seen| seen.iter().find(|(t, _)| *t == id).map(|(_, s)| *s)) {
        return known;
    }
    let built = build_schemas::<T>();
    SEEN.with_borrow_mut(|seen| seen.push((id, built)));
    built
}

/// The schemas of `T`, parsed on the first call in the process.
fn build_schemas<T: EventType>() -> &'static Schemas {
    static ALL: OnceLock<Mutex<HashMap<&'static str, &'static Schemas>>> = OnceLock::new();
    let mut all = ALL.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    all.entry(T::NAME).or_insert_with(|| {
        let bad_avsc = |e: &dyn std::fmt::Display| -> ! { panic!("{}: bad .avsc: {e}", T::NAME) };
        let mut by_fingerprint = HashMap::new();
        let mut newest = None;
        // Oldest first, so that if two versions share a fingerprint (they differ in no way that matters
        // to parsing) the newer one wins.
        for text in T::history() {
            let schema = Schema::parse_str(text).unwrap_or_else(|e| bad_avsc(&e));
            let standard = standard::fingerprint(text).unwrap_or_else(|e| bad_avsc(&e));
            let legacy = legacy_fingerprint(&schema);
            by_fingerprint.insert(legacy, schema.clone());
            by_fingerprint.insert(standard, schema.clone());
            newest = Some((schema, standard, legacy));
        }
        let (current, current_fingerprint, current_legacy_fingerprint) =
            newest.expect("every event has at least one schema");
        let current_reader = GenericSingleObjectReader::new_with_header_builder(current.clone(), NoHeader)
            .unwrap_or_else(|e| bad_avsc(&e));
        Box::leak(Box::new(Schemas {
            current_fingerprint,
            current_legacy_fingerprint,
            current_names: Names::of(&current),
            current,
            current_reader,
            by_fingerprint,
        }))
    })
}

pub fn encode<T: EventType>(event: &T) -> Result<Vec<u8>, CodecError> {
    encode_as::<T>(event)
}

/// Encodes `view` as a `T` (with `T`'s current schema): `view` is a borrowed form of `T` that serializes
/// field by field as `T` does (e.g. [`crate::OrderStateRecordView`]), so no owned `T` is put together
/// just to be written.
pub fn encode_as<T: EventType>(view: &impl Serialize) -> Result<Vec<u8>, CodecError> {
    let schemas = schemas::<T>();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&schemas.current_fingerprint);
    // Written straight against the schema, field by field (the datum writer): no intermediate `Value`
    // tree, no per-call schema resolution, no per-field name lookup. A value it cannot write (a type
    // whose shape strays from its schema) goes through apache-avro, which says what is wrong.
    if to_datum(view, &schemas.current, &schemas.current_names, &mut out).is_err() {
        out.truncate(HEADER_LEN);
        write_avro_datum_ref(&schemas.current, view, &mut out)
            .map_err(|e| CodecError::Encode { event: T::NAME, reason: e.to_string() })?;
    }
    Ok(out)
}

/// An order's state record ([`crate::OrderStateRecordView`]) encoded as [`encode_as`] encodes it, written
/// by hand for the one fixed shape of `order_state.v1.avsc`: the transform writes one per changed order
/// per batch, and the schema-driven writer spent ~2,000 instructions on each (this, ~700; BENCHMARKS.md).
/// Tests hold it to the schema-driven writer byte for byte, on any record, and to that schema being the
/// current one, so a new version fails them until this changes with it.
pub fn encode_state_record(view: &crate::OrderStateRecordView<'_>) -> Vec<u8> {
    let lists = [&view.boxes, &view.receipts, &view.revenue];
    // A varint takes at most 10 bytes: the vendor id's length, 2 longs, each list's block count and
    // closing zero, and each item's length.
    let size = HEADER_LEN
        + 10
        + view.vendor_id.len()
        + 2 * 10
        + lists.iter().map(|list| 20 + list.iter().map(|bytes| 10 + bytes.len()).sum::<usize>()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&schemas::<crate::OrderStateRecord>().current_fingerprint);
    write_long(&mut out, view.vendor_id.len() as i64);
    out.extend_from_slice(view.vendor_id.as_bytes());
    write_long(&mut out, view.order_id);
    write_long(&mut out, view.source_time);
    for list in lists {
        // In blocks, as apache-avro writes arrays.
        for block in list.chunks(BLOCK_ITEMS) {
            write_long(&mut out, block.len() as i64);
            for bytes in block {
                write_long(&mut out, bytes.len() as i64);
                out.extend_from_slice(bytes);
            }
        }
        out.push(0);
    }
    out
}

/// A payment fact encoded as [`encode`] encodes it, through [`write_fact_datum`]: what the tests hold
/// that datum to, against the schema-driven writer, byte for byte (the transform sends facts in
/// [`encode_order_facts`]'s records).
#[cfg(test)]
fn encode_fact(fact: &crate::PaymentFact) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + fact_datum_size(fact));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&schemas::<crate::PaymentFact>().current_fingerprint);
    write_fact_datum(&mut out, fact);
    out
}

/// One order's payment facts as one record (`order_payment_facts.v1.avsc`), encoded as [`encode`]
/// encodes it, written by hand for its one shape: the transform sends one per order per change, and
/// the schema-driven writer spent ~4,000 instructions on each fact (this, ~1,200; BENCHMARKS.md).
/// Tests hold it and each fact's datum to the schema-driven writer byte for byte, on any fact, and
/// to both schemas being the current ones, so a new version fails them until this changes with it.
pub fn encode_order_facts(vendor_id: &str, order_id: i64, facts: &[crate::PaymentFact]) -> Vec<u8> {
    let items: usize = facts.iter().map(fact_datum_size).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + 10 + vendor_id.len() + 10 + 20 + items);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&schemas::<crate::OrderPaymentFacts>().current_fingerprint);
    write_long(&mut out, vendor_id.len() as i64);
    out.extend_from_slice(vendor_id.as_bytes());
    write_long(&mut out, order_id);
    // In blocks, as apache-avro writes arrays.
    for block in facts.chunks(BLOCK_ITEMS) {
        write_long(&mut out, block.len() as i64);
        block.iter().for_each(|fact| write_fact_datum(&mut out, fact));
    }
    out.push(0);
    out
}

/// The most bytes a fact's datum takes: a varint takes at most 10 bytes (15 longs and ints, the
/// union's index and 5 string lengths), then the strings and the 2 booleans.
fn fact_datum_size(fact: &crate::PaymentFact) -> usize {
    let texts = fact.vendor_id.len() + fact.account_alias.len() + fact.vendor_item_name.len();
    let words = fact.status.as_str().len() + fact.change_cause.as_str().len();
    21 * 10 + texts + words + 2
}

/// A payment fact's datum (`payment_fact.v2.avsc`), field by field.
fn write_fact_datum(out: &mut Vec<u8>, fact: &crate::PaymentFact) {
    let string = |out: &mut Vec<u8>, text: &str| {
        write_long(out, text.len() as i64);
        out.extend_from_slice(text.as_bytes());
    };
    string(out, &fact.vendor_id);
    string(out, &fact.account_alias);
    for id in [fact.order_id, fact.vendor_item_id, fact.shipment_box_id] {
        write_long(out, id);
    }
    string(out, &fact.vendor_item_name);
    write_long(out, i64::from(fact.payment_date));
    write_long(out, fact.paid_at);
    string(out, fact.status.as_str());
    write_long(out, i64::from(fact.quantity));
    write_long(out, i64::from(fact.cancelled_quantity));
    let amounts = [
        fact.order_price,
        fact.shipping_fee,
        fact.seller_coupon_discount,
        fact.coupang_coupon_discount,
        fact.payment_amount,
    ];
    for amount in amounts {
        write_long(out, amount);
    }
    out.push(u8::from(fact.provisional));
    out.push(u8::from(fact.cancelled));
    write_long(out, fact.event_time);
    write_long(out, fact.version);
    string(out, fact.change_cause.as_str());
    // ["null", "long"]: the branch's index, then the value.
    match fact.previous_payment_amount {
        None => write_long(out, 0),
        Some(amount) => {
            write_long(out, 1);
            write_long(out, amount);
        }
    }
}

/// The payment facts in a message of the facts topic: an order's facts in one record
/// ([`crate::OrderPaymentFacts`], what the transform writes), or one fact ([`crate::PaymentFact`], what
/// it wrote before). A record whose facts are not all of its own order is malformed: a reader keyed
/// by the message would file them under the wrong order.
pub fn decode_facts(bytes: &[u8]) -> Result<Vec<crate::PaymentFact>, CodecError> {
    if writer_of::<crate::OrderPaymentFacts>(bytes).is_err() {
        return match decode::<crate::PaymentFact>(bytes) {
            // Neither kind: say both.
            Err(CodecError::UnknownSchema { fingerprint, .. }) => Err(CodecError::UnknownSchema {
                event: "facts message (OrderPaymentFacts or PaymentFact)",
                fingerprint,
            }),
            read => read.map(|fact| vec![fact]),
        };
    }
    let order = decode::<crate::OrderPaymentFacts>(bytes)?;
    let stray = order.facts.iter().position(|f| f.vendor_id != order.vendor_id || f.order_id != order.order_id);
    if let Some(index) = stray {
        let fact = &order.facts[index];
        return Err(CodecError::Malformed {
            event: crate::OrderPaymentFacts::NAME,
            reason: format!(
                "facts[{index}] is of order {}:{}, the record's is {}:{}",
                fact.vendor_id, fact.order_id, order.vendor_id, order.order_id
            ),
        });
    }
    Ok(order.facts)
}

/// The most apache-avro may allocate for one string, byte array or array length while decoding.
/// Kafka messages are at most about 1 MB, so no honest length is larger; without the bound a poison
/// message claiming a 400-million-item array made the decoder reserve 29 GB and abort the process
/// (found by the `avro_events` fuzz target). Array items still cost up to ~80 bytes each, so a lie
/// costs at most a short-lived ~80 MB.
const MAX_ALLOCATION_BYTES: usize = 1 << 20;

pub fn decode<T: EventType>(bytes: &[u8]) -> Result<T, CodecError> {
    let (schemas, writer, fp) = writer_of::<T>(bytes)?;
    if !schemas.is_current(&fp) {
        return decode_with_apache_avro(bytes);
    }
    // Written with the current schema (nearly every record): read straight from the bytes, by hand
    // where the type has a reader of its own.
    if let Some(event) = T::read_current(&bytes[HEADER_LEN..]) {
        return Ok(event);
    }
    read_datum(schemas, writer, bytes)
}

/// Reads a record of the current schema (`writer`) with the datum reader.
fn read_datum<T: EventType>(schemas: &Schemas, writer: &Schema, bytes: &[u8]) -> Result<T, CodecError> {
    let malformed = |reason: String| CodecError::Malformed { event: T::NAME, reason };
    let mut datum = &bytes[HEADER_LEN..];
    let event = from_datum::<T>(writer, &schemas.current_names, &mut datum).map_err(|e| malformed(e.0))?;
    if !datum.is_empty() {
        return Err(malformed(format!("{} trailing bytes", datum.len())));
    }
    Ok(event)
}

/// [`decode`] of a record of the current schema without the hand-written readers: what they are held to.
#[cfg(test)]
pub(crate) fn decode_with_datum_reader<T: EventType>(bytes: &[u8]) -> Result<T, CodecError> {
    let (schemas, writer, fingerprint) = writer_of::<T>(bytes)?;
    assert!(schemas.is_current(&fingerprint), "a record of an older schema");
    read_datum(schemas, writer, bytes)
}

/// The single-object header of `T`'s current schema, to frame a datum with (tests).
#[cfg(test)]
pub(crate) fn current_header<T: EventType>() -> Vec<u8> {
    [&MAGIC[..], &schemas::<T>().current_fingerprint[..]].concat()
}

/// The header's schema, checked: the event's schemas, the writer's schema and its fingerprint.
fn writer_of<T: EventType>(bytes: &[u8]) -> Result<(&'static Schemas, &'static Schema, [u8; 8]), CodecError> {
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return Err(CodecError::NotSingleObject { len: bytes.len() });
    }
    let schemas = schemas::<T>();
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[2..HEADER_LEN]);
    if schemas.is_current(&fp) {
        return Ok((schemas, &schemas.current, fp));
    }
    let writer = schemas.by_fingerprint.get(&fp).ok_or_else(|| CodecError::UnknownSchema {
        event: T::NAME,
        fingerprint: fp.iter().map(|b| format!("{b:02x}")).collect(),
    })?;
    Ok((schemas, writer, fp))
}

/// Decodes through apache-avro's `Value` tree: records of older schemas (resolved against the current
/// one), and the reference the datum reader is tested against.
pub fn decode_with_apache_avro<T: EventType>(bytes: &[u8]) -> Result<T, CodecError> {
    // The limit is process-wide and set once; the first decode sets it.
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
    let (schemas, writer, fp) = writer_of::<T>(bytes)?;
    let malformed = |reason: String| CodecError::Malformed { event: T::NAME, reason };
    let mut datum = EndIsAnError(&bytes[HEADER_LEN..]);
    let value = if schemas.is_current(&fp) {
        schemas.current_reader.read_value(&mut datum)
    } else {
        // Written with an older schema: resolved against the current one.
        from_avro_datum(writer, &mut datum, Some(&schemas.current))
    }
    .map_err(|e| malformed(e.to_string()))?;
    if !datum.0.is_empty() {
        return Err(malformed(format!("{} trailing bytes", datum.0.len())));
    }
    from_value::<T>(&value).map_err(|e| malformed(e.to_string()))
}

/// A datum's bytes for apache-avro, whose end is an error of its own kind rather than `UnexpectedEof`.
///
/// apache-avro 0.21 reads a union index or a string that the input's end cuts off as null (it treats
/// `UnexpectedEof` as "no value"), so a message truncated before a trailing optional field decoded as
/// if the field were null: a fact losing `previous_payment_amount`, a revenue row its delivery fee.
/// The datum reader refuses such a message; with this, so does apache-avro (found by the `avro_events`
/// fuzz target).
struct EndIsAnError<'a>(&'a [u8]);

impl std::io::Read for EndIsAnError<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() && !buf.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the datum ends early"));
        }
        self.0.read(buf)
    }
}

/// The Avro specification's schema fingerprint, computed from the `.avsc` text.
///
/// apache-avro 0.21 has no conformant option: its `Schema::canonical_form` writes
/// `{"type":"long","logicalType":"timestamp-millis"}` as `{"type":"long"}` where the specification says
/// `"long"`, and keeps decimals' `precision` and `scale`, so a reader that looks a schema up by the
/// fingerprint (fastavro, Java's `SchemaNormalization`) finds none. The Parsing Canonical Form is
/// therefore built here from the JSON itself, independently of how a library models the schema.
pub(crate) mod standard {
    use serde_json::{Map, Value};
    use std::collections::HashSet;

    #[derive(Debug, PartialEq, Eq, thiserror::Error)]
    pub enum CanonicalFormError {
        #[error("the schema is not JSON: {0}")]
        NotJson(String),
        #[error("not an Avro schema (a schema is a type name, an object or a union array): {0}")]
        NotASchema(String),
        #[error("{what}: no valid \"{attribute}\" attribute")]
        MissingAttribute { what: String, attribute: &'static str },
        #[error("type {0:?} is neither a primitive nor a named type defined before it")]
        UnknownName(String),
        #[error("named type {0:?} is defined twice")]
        DefinedTwice(String),
    }

    /// The fingerprint a single-object header carries: CRC-64-AVRO of the Parsing Canonical Form, as
    /// 8 little-endian bytes ("Single-object encoding": "the 8-byte little-endian CRC-64-AVRO
    /// fingerprint of the object's schema").
    pub fn fingerprint(schema_json: &str) -> Result<[u8; 8], CanonicalFormError> {
        Ok(crc64_avro(parsing_canonical_form(schema_json)?.as_bytes()).to_le_bytes())
    }

    /// The specification's "Parsing Canonical Form for Schemas": the schema with everything that does
    /// not change how data is read taken out, written one way only.
    ///
    /// - PRIMITIVES: a primitive is its bare name, `"long"`, also when written as an object. A logical
    ///   type is its underlying type (`{"type":"int","logicalType":"date"}` is `"int"`).
    /// - FULLNAMES: named types (record, enum, fixed) and references to them use fullnames. A name with
    ///   a dot is already full; otherwise it takes the type's `namespace` attribute, or else the
    ///   namespace of the enclosing named type (a nested record without a namespace inherits it).
    /// - STRIP: objects keep only `type`, `name`, `fields`, `symbols`, `items`, `values`, `size`; so
    ///   `namespace`, `doc`, `aliases`, `default`, `order`, `logicalType`, `precision`, `scale` and
    ///   any other attribute go. A record's fields keep `name` (never qualified) and `type`.
    /// - ORDER: `name`, `type`, `fields`, `symbols`, `items`, `values`, `size`.
    /// - STRINGS: no escapes where UTF-8 will do (see [`CanonicalForm::string`]).
    /// - INTEGERS: `size` without quotes or leading zeros.
    /// - WHITESPACE: none outside strings.
    ///
    /// A named type is written in full where it is first defined and as its quoted fullname after,
    /// as in the specification's reference implementation (Java's `SchemaNormalization`).
    pub fn parsing_canonical_form(schema_json: &str) -> Result<String, CanonicalFormError> {
        let schema: Value =
            serde_json::from_str(schema_json).map_err(|e| CanonicalFormError::NotJson(e.to_string()))?;
        let mut form = CanonicalForm::default();
        form.schema(&schema, "")?;
        Ok(form.text)
    }

    const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

    /// The canonical text written so far, and the fullnames of the named types it defines.
    #[derive(Default)]
    struct CanonicalForm {
        text: String,
        defined: HashSet<String>,
    }

    impl CanonicalForm {
        /// Writes `schema`; `namespace` is the enclosing named type's ("" for none, the null namespace).
        fn schema(&mut self, schema: &Value, namespace: &str) -> Result<(), CanonicalFormError> {
            match schema {
                Value::String(name) => self.type_name(name, namespace),
                Value::Array(branches) => {
                    // A union.
                    self.text.push('[');
                    for (i, branch) in branches.iter().enumerate() {
                        if i > 0 {
                            self.text.push(',');
                        }
                        self.schema(branch, namespace)?;
                    }
                    self.text.push(']');
                    Ok(())
                }
                Value::Object(attributes) => self.object(attributes, namespace),
                other => Err(CanonicalFormError::NotASchema(other.to_string())),
            }
        }

        /// A type given by its name: a primitive, or a named type defined earlier, written as its
        /// fullname.
        fn type_name(&mut self, name: &str, namespace: &str) -> Result<(), CanonicalFormError> {
            if PRIMITIVES.contains(&name) {
                self.string(name);
                return Ok(());
            }
            let qualified = full_name(name, namespace);
            // As in Java's parser, a short name not defined in the enclosing namespace may still name a
            // type of the null namespace.
            let full = if self.defined.contains(&qualified) {
                qualified
            } else if self.defined.contains(name) {
                name.to_string()
            } else {
                return Err(CanonicalFormError::UnknownName(name.to_string()));
            };
            self.string(&full);
            Ok(())
        }

        fn object(&mut self, attributes: &Map<String, Value>, namespace: &str) -> Result<(), CanonicalFormError> {
            let Some(Value::String(kind)) = attributes.get("type") else {
                return Err(missing(format!("schema {}", Value::Object(attributes.clone())), "type"));
            };
            match kind.as_str() {
                "record" | "enum" | "fixed" => self.named(kind, attributes, namespace),
                "array" => self.container("array", "items", attributes, namespace),
                "map" => self.container("map", "values", attributes, namespace),
                // A primitive (its logical type and every other attribute stripped), or a named type
                // referenced in object form.
                name => self.type_name(name, namespace),
            }
        }

        /// An array or a map: `{"type":"array","items":…}`, `{"type":"map","values":…}`.
        fn container(
            &mut self,
            kind: &str,
            child: &'static str,
            attributes: &Map<String, Value>,
            namespace: &str,
        ) -> Result<(), CanonicalFormError> {
            let child_schema = attributes.get(child).ok_or_else(|| missing(kind.to_string(), child))?;
            self.text.push_str("{\"type\":");
            self.string(kind);
            self.text.push(',');
            self.string(child);
            self.text.push(':');
            self.schema(child_schema, namespace)?;
            self.text.push('}');
            Ok(())
        }

        /// A record, enum or fixed, where it is defined.
        fn named(
            &mut self,
            kind: &str,
            attributes: &Map<String, Value>,
            enclosing_namespace: &str,
        ) -> Result<(), CanonicalFormError> {
            let Some(Value::String(name)) = attributes.get("name") else {
                return Err(missing(kind.to_string(), "name"));
            };
            let namespace = match attributes.get("namespace") {
                Some(Value::String(namespace)) => namespace.as_str(),
                None | Some(Value::Null) => enclosing_namespace,
                Some(_) => return Err(missing(format!("{kind} {name}"), "namespace")),
            };
            let full = full_name(name, namespace);
            // What the types nested in it inherit: the namespace of its fullname (a dotted name's own).
            let own_namespace = full.rsplit_once('.').map_or("", |(namespace, _)| namespace).to_string();
            if !self.defined.insert(full.clone()) {
                return Err(CanonicalFormError::DefinedTwice(full));
            }
            let what = || format!("{kind} {full}");
            self.text.push_str("{\"name\":");
            self.string(&full);
            self.text.push_str(",\"type\":");
            self.string(kind);
            match kind {
                "record" => {
                    let fields =
                        attributes.get("fields").and_then(Value::as_array).ok_or_else(|| missing(what(), "fields"))?;
                    self.text.push_str(",\"fields\":[");
                    for (i, field) in fields.iter().enumerate() {
                        let field_name = field.get("name").and_then(Value::as_str);
                        let field_name = field_name.ok_or_else(|| missing(format!("a field of {}", what()), "name"))?;
                        let field_type = field.get("type");
                        let field_type =
                            field_type.ok_or_else(|| missing(format!("field {field_name} of {}", what()), "type"))?;
                        if i > 0 {
                            self.text.push(',');
                        }
                        self.text.push_str("{\"name\":");
                        self.string(field_name);
                        self.text.push_str(",\"type\":");
                        self.schema(field_type, &own_namespace)?;
                        self.text.push('}');
                    }
                    self.text.push(']');
                }
                "enum" => {
                    let symbols = attributes.get("symbols").and_then(Value::as_array);
                    let symbols = symbols
                        .and_then(|symbols| symbols.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
                        .ok_or_else(|| missing(what(), "symbols"))?;
                    self.text.push_str(",\"symbols\":[");
                    for (i, symbol) in symbols.into_iter().enumerate() {
                        if i > 0 {
                            self.text.push(',');
                        }
                        self.string(symbol);
                    }
                    self.text.push(']');
                }
                _ => {
                    // fixed. INTEGERS: a size written as "015" is 15.
                    let size = match attributes.get("size") {
                        Some(Value::Number(size)) => size.as_u64(),
                        Some(Value::String(digits))
                            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            digits.parse::<u64>().ok()
                        }
                        _ => None,
                    };
                    let size = size.ok_or_else(|| missing(what(), "size"))?;
                    self.text.push_str(&format!(",\"size\":{size}"));
                }
            }
            self.text.push('}');
            Ok(())
        }

        /// STRINGS: the JSON parser has already replaced every escape with its character; written back,
        /// only `"`, `\` and control characters are escaped again (JSON needs it, and no valid name,
        /// symbol or type contains one), everything else is plain UTF-8.
        fn string(&mut self, s: &str) {
            self.text.push_str(&Value::from(s).to_string());
        }
    }

    fn missing(what: String, attribute: &'static str) -> CanonicalFormError {
        CanonicalFormError::MissingAttribute { what, attribute }
    }

    /// A name with a dot is a fullname already (any namespace given beside it is ignored); a short
    /// name takes the namespace, if there is one.
    fn full_name(name: &str, namespace: &str) -> String {
        if name.contains('.') || namespace.is_empty() {
            name.to_string()
        } else {
            format!("{namespace}.{name}")
        }
    }

    /// CRC-64-AVRO, the specification's 64-bit Rabin fingerprint ("Schema Fingerprints"): a table of
    /// the polynomial's remainders, then one table step per byte.
    pub fn crc64_avro(bytes: &[u8]) -> u64 {
        bytes.iter().fold(EMPTY, |fp, &byte| (fp >> 8) ^ TABLE[((fp ^ u64::from(byte)) & 0xff) as usize])
    }

    /// The fingerprint of no bytes, which is also the polynomial.
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

    const TABLE: [u64; 256] = {
        let mut table = [0u64; 256];
        let mut i = 0;
        while i < 256 {
            let mut fp = i as u64;
            let mut bit = 0;
            while bit < 8 {
                fp = (fp >> 1) ^ (EMPTY & 0u64.wrapping_sub(fp & 1));
                bit += 1;
            }
            table[i] = fp;
            i += 1;
        }
        table
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OrderSheetEvent, OrderSheetItem, PaymentFact};
    use proptest::prelude::*;

    fn item(id: i64) -> OrderSheetItem {
        OrderSheetItem {
            vendor_item_id: id,
            vendor_item_name: "양말 3켤레".into(),
            seller_product_id: 77,
            shipping_count: 2,
            cancel_count: 0,
            hold_count_for_cancel: 0,
            sales_price: 9_900,
            order_price: 19_800,
            discount_price: 0,
            instant_coupon_discount: 0,
            downloadable_coupon_discount: 0,
            coupang_discount: 0,
            confirm_date: None,
            canceled: false,
        }
    }

    fn event() -> OrderSheetEvent {
        OrderSheetEvent {
            vendor_id: "A00012345".into(),
            account_alias: "brand-a".into(),
            collected_at: 1_760_000_000_000,
            api_version: "v5".into(),
            shipment_box_id: 642_538_971_006_401_429,
            order_id: 24_000_057_163_001,
            status: "INSTRUCT".into(),
            ordered_at: Some(1_759_999_000_000),
            paid_at: 1_759_999_100_000,
            shipping_price: 3_000,
            remote_price: 0,
            remote_area: false,
            in_transit_at: None,
            delivered_at: Some(1_760_100_000_000),
            items: vec![item(1), item(2)],
        }
    }

    #[test]
    fn order_sheet_round_trips() {
        let e = event();
        let bytes = encode(&e).unwrap();
        assert_eq!(&bytes[..2], &MAGIC);
        assert_eq!(decode::<OrderSheetEvent>(&bytes).unwrap(), e);
    }

    /// The encoder before it serialized straight against the schema: through a resolved `Value` tree.
    fn encode_via_value<T: EventType>(event: &T) -> Vec<u8> {
        let schemas = schemas::<T>();
        let value = apache_avro::to_value(event).unwrap().resolve(&schemas.current).unwrap();
        let datum = apache_avro::to_avro_datum(&schemas.current, value).unwrap();
        [&MAGIC[..], &schemas.current_fingerprint[..], &datum[..]].concat()
    }

    #[test]
    fn the_direct_encoder_writes_the_same_bytes_as_the_value_tree() {
        let mut e = event();
        e.items[1].confirm_date = Some(1_760_200_000_000);
        assert_eq!(encode(&e).unwrap(), encode_via_value(&e));
        let state = crate::OrderStateRecord {
            vendor_id: "A00012345".into(),
            order_id: 7,
            source_time: 9,
            boxes: vec![encode(&e).unwrap()],
            receipts: vec![],
            revenue: vec![vec![1, 2, 3]],
        };
        assert_eq!(encode(&state).unwrap(), encode_via_value(&state));
    }

    /// What the schema-driven datum writer writes, with the header: no fallback to apache-avro.
    fn written_by_the_datum_writer<T: EventType>(value: &impl Serialize) -> Vec<u8> {
        let schemas = schemas::<T>();
        let mut out = [&MAGIC[..], &schemas.current_fingerprint[..]].concat();
        to_datum(value, &schemas.current, &schemas.current_names, &mut out)
            .unwrap_or_else(|e| panic!("{}: the datum writer refused it: {e}", T::NAME));
        out
    }

    #[test]
    fn a_state_record_written_by_hand_splits_long_lists_into_blocks_as_the_schema_writer_does() {
        for len in [1_024u32, 1_025, 1_026, 2_050, 2_100] {
            let many: Vec<std::borrow::Cow<'_, [u8]>> = (0..len).map(|i| i.to_le_bytes().to_vec().into()).collect();
            let view = crate::OrderStateRecordView {
                vendor_id: "A00012345",
                order_id: 7,
                source_time: -9,
                boxes: many.clone(),
                receipts: vec![],
                revenue: many,
            };
            let written = encode_state_record(&view);
            assert_eq!(written, written_by_the_datum_writer::<crate::OrderStateRecord>(&view), "{len} items");
            assert_eq!(decode::<crate::OrderStateRecord>(&written).unwrap().revenue.len(), len as usize);
        }
    }

    /// The hand-written encoders write one version of their schemas: a new version must change them.
    #[test]
    fn the_hand_written_encoders_write_the_current_schemas() {
        let current = |history: &[&'static str]| history.last().copied();
        assert_eq!(current(PaymentFact::history()), Some(include_str!("../avro/payment_fact.v2.avsc")));
        assert_eq!(current(crate::OrderStateRecord::history()), Some(include_str!("../avro/order_state.v1.avsc")));
        let order_facts = Some(include_str!("../avro/order_payment_facts.v1.avsc"));
        assert_eq!(current(crate::OrderPaymentFacts::history()), order_facts);
    }

    /// A fact of order `order_id` of vendor `A00012345`.
    fn fact_of(order_id: i64, vendor_item_id: i64) -> PaymentFact {
        PaymentFact {
            vendor_id: "A00012345".into(),
            account_alias: "shop".into(),
            order_id,
            vendor_item_id,
            shipment_box_id: 6,
            vendor_item_name: "item".into(),
            payment_date: 20_000,
            paid_at: 1,
            status: "ACCEPT".into(),
            quantity: 1,
            cancelled_quantity: 0,
            order_price: 1_000,
            shipping_fee: 0,
            seller_coupon_discount: 0,
            coupang_coupon_discount: 0,
            payment_amount: 1_000,
            provisional: true,
            cancelled: false,
            event_time: 2,
            version: 3,
            change_cause: crate::ChangeCause::NewOrder,
            previous_payment_amount: None,
        }
    }

    #[test]
    fn an_order_s_facts_written_by_hand_split_long_lists_into_blocks_as_the_schema_writer_does() {
        for len in [0, 1, 1_024, 1_025, 2_100] {
            let facts: Vec<PaymentFact> = (0..len).map(|item| fact_of(7, item)).collect();
            let record = crate::OrderPaymentFacts { vendor_id: "A00012345".into(), order_id: 7, facts };
            let written = encode_order_facts("A00012345", 7, &record.facts);
            assert_eq!(written, written_by_the_datum_writer::<crate::OrderPaymentFacts>(&record), "{len} facts");
            if len as usize <= BLOCK_ITEMS {
                // apache-avro writes a longer list as one block, which reads the same.
                assert_eq!(written, encode_via_value(&record), "{len} facts");
            }
            assert_eq!(decode_facts(&written).unwrap(), record.facts);
        }
    }

    /// An order's record holds facts exactly as `payment_fact.v2.avsc` writes them (its text is a copy).
    #[test]
    fn an_order_s_facts_are_the_current_payment_fact_schema() {
        let order: serde_json::Value =
            serde_json::from_str(include_str!("../avro/order_payment_facts.v1.avsc")).unwrap();
        // Named inside the record, the items take its namespace.
        let mut items = order["fields"][2]["type"]["items"].clone();
        items["namespace"] = order["namespace"].clone();
        let fact = PaymentFact::history().last().copied().unwrap_or_default();
        let canonical = standard::parsing_canonical_form(&items.to_string()).unwrap();
        assert_eq!(canonical, standard::parsing_canonical_form(fact).unwrap());
    }

    #[test]
    fn the_facts_topic_reads_as_facts_whether_a_message_holds_an_order_or_one_fact() {
        let facts = vec![fact_of(7, 1), fact_of(7, 2)];
        assert_eq!(decode_facts(&encode_order_facts("A00012345", 7, &facts)).unwrap(), facts);
        assert_eq!(decode_facts(&encode_fact(&facts[1])).unwrap(), vec![facts[1].clone()]);
        // A fact of another order in an order's record.
        let stray = [fact_of(7, 1), fact_of(8, 1)];
        let error = decode_facts(&encode_order_facts("A00012345", 7, &stray)).unwrap_err().to_string();
        assert!(error.contains("facts[1] is of order A00012345:8, the record's is A00012345:7"), "{error}");
        // Neither kind of record.
        let sheet = encode(&event()).unwrap();
        assert!(matches!(decode_facts(&sheet), Err(CodecError::UnknownSchema { .. })));
        assert!(matches!(decode_facts(b"\xC3"), Err(CodecError::NotSingleObject { .. })));
    }

    /// The datum writer itself (not its apache-avro fallback), against apache-avro's writer.
    fn written_directly_as_apache_avro_writes<T: EventType>(event: &T) {
        let schemas = schemas::<T>();
        let mut direct = Vec::new();
        to_datum(event, &schemas.current, &schemas.current_names, &mut direct)
            .unwrap_or_else(|e| panic!("{}: the datum writer refused it: {e}", T::NAME));
        let mut reference = Vec::new();
        write_avro_datum_ref(&schemas.current, event, &mut reference).unwrap();
        assert_eq!(direct, reference, "{}", T::NAME);
    }

    #[test]
    fn the_datum_writer_writes_every_event_type_as_apache_avro_does() {
        let mut sheet = event();
        sheet.items[0].confirm_date = Some(1_760_300_000_000);
        sheet.ordered_at = None;
        written_directly_as_apache_avro_writes(&sheet);
        let item = |id, shipment_box_id| crate::ReturnRequestItem {
            vendor_item_id: id,
            vendor_item_name: "양말".into(),
            purchase_count: 2,
            cancel_count: 1,
            shipment_box_id,
            seller_product_id: None,
        };
        let receipt = crate::ReturnRequestEvent {
            vendor_id: "A00012345".into(),
            account_alias: "brand-a".into(),
            collected_at: 1,
            api_version: "v6".into(),
            receipt_id: -5,
            order_id: i64::MAX,
            payment_id: Some(i64::MIN),
            receipt_type: "RETURN".into(),
            receipt_status: "RETURNS_COMPLETED".into(),
            created_at: 0,
            modified_at: None,
            complete_confirm_date: Some(3),
            cancel_count_sum: i32::MIN,
            return_shipping_charge: 2_500,
            fault_by_type: Some("CUSTOMER".into()),
            reason_code: None,
            items: vec![item(1, Some(9)), item(2, None)],
        };
        written_directly_as_apache_avro_writes(&receipt);
        let revenue = crate::RevenueEvent {
            vendor_id: "A00012345".into(),
            account_alias: "".into(),
            collected_at: 1,
            order_id: 2,
            sale_type: crate::SaleType::Refund,
            sale_date: -3,
            recognition_date: i32::MAX,
            delivery_fee: -2_500,
            items: vec![],
            same_day_row: 1,
            delivery_fee_settlement: Some(-2_417),
        };
        written_directly_as_apache_avro_writes(&revenue);
        let payout = crate::SettlementEvent {
            vendor_id: "A00012345".into(),
            account_alias: "brand-a".into(),
            collected_at: 1,
            recognition_month: "2026-05".into(),
            settlement_type: crate::SettlementType::Unknown("BIWEEKLY".into()),
            settlement_date: 20_599,
            recognition_date_from: 20_574,
            recognition_date_to: 20_576,
            total_sale: 1_789_400,
            service_fee: 208_648,
            settlement_target_amount: 1_580_752,
            settlement_amount: 1_106_527,
            last_amount: 474_225,
            pending_released_amount: 0,
            seller_discount_coupon: 0,
            downloadable_coupon: 0,
            seller_service_fee: i64::MIN,
            deduction_amount: i64::MAX,
            debt_of_last_week: -1,
            final_amount: 1_106_527,
            status: crate::SettlementStatus::Done,
        };
        written_directly_as_apache_avro_writes(&payout);
        assert_eq!(decode::<crate::SettlementEvent>(&encode(&payout).unwrap()).unwrap(), payout);
        // Over 1,025 items, where apache-avro starts a second block.
        let state = crate::OrderStateRecord {
            vendor_id: "A00012345".into(),
            order_id: 7,
            source_time: 9,
            boxes: (0..2_100).map(|i| vec![i as u8; i % 3]).collect(),
            receipts: vec![],
            revenue: vec![vec![1, 2, 3]],
        };
        written_directly_as_apache_avro_writes(&state);
        assert_eq!(decode::<crate::OrderStateRecord>(&encode(&state).unwrap()).unwrap(), state);
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        assert!(matches!(decode::<OrderSheetEvent>(b"{}"), Err(CodecError::NotSingleObject { .. })));
        let mut unknown = encode(&event()).unwrap();
        unknown[5] ^= 0xff;
        assert!(matches!(decode::<OrderSheetEvent>(&unknown), Err(CodecError::UnknownSchema { .. })));
        let bytes = encode(&event()).unwrap();
        let truncated = &bytes[..bytes.len() - 3];
        assert!(matches!(decode::<OrderSheetEvent>(truncated), Err(CodecError::Malformed { .. })));
        // A fact is not an order sheet: the fingerprint tells them apart.
        assert!(matches!(decode::<PaymentFact>(&bytes), Err(CodecError::UnknownSchema { .. })));
    }

    /// The specification's own test vectors (`share/test/data/schema-tests.txt` of the Avro
    /// repository, checked by its Java implementation): input, canonical form, fingerprint as the
    /// signed 64-bit number the file gives (where it gives one).
    const SPEC_VECTORS: &[(&str, &str, Option<i64>)] = &[
        (r#""null""#, r#""null""#, Some(7195948357588979594)),
        (r#"{"type":"null"}"#, r#""null""#, None),
        (r#""boolean""#, r#""boolean""#, Some(-6970731678124411036)),
        (r#"{"type":"boolean"}"#, r#""boolean""#, None),
        (r#""int""#, r#""int""#, Some(8247732601305521295)),
        (r#"{"type":"int"}"#, r#""int""#, None),
        (r#""long""#, r#""long""#, Some(-3434872931120570953)),
        (r#"{"type":"long"}"#, r#""long""#, None),
        (r#""float""#, r#""float""#, Some(5583340709985441680)),
        (r#"{"type":"float"}"#, r#""float""#, None),
        (r#""double""#, r#""double""#, Some(-8181574048448539266)),
        (r#"{"type":"double"}"#, r#""double""#, None),
        (r#""bytes""#, r#""bytes""#, Some(5746618253357095269)),
        (r#"{"type":"bytes"}"#, r#""bytes""#, None),
        (r#""string""#, r#""string""#, Some(-8142146995180207161)),
        (r#"{"type":"string"}"#, r#""string""#, None),
        ("[  ]", "[]", Some(-1241056759729112623)),
        (r#"[ "int"  ]"#, r#"["int"]"#, Some(-5232228896498058493)),
        (r#"[ "int" , {"type":"boolean"} ]"#, r#"["int","boolean"]"#, Some(5392556393470105090)),
        (
            r#"{"fields":[], "type":"record", "name":"foo"}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}"#,
            r#"{"name":"x.y.foo","type":"record","fields":[]}"#,
            Some(5916914534497305771),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}"#,
            r#"{"name":"a.b.foo","type":"record","fields":[]}"#,
            Some(-4616218487480524110),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}"#,
            r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}"#,
            Some(7843277075252814651),
        ),
        (
            r#"{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},
                          {"order":"descending","name":"f2","doc":"Hello","type":"int"}],
                 "type":"record", "name":"foo"
               }"#,
            r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}"#,
            Some(-4860222112080293046),
        ),
        (
            r#"{"type":"enum", "name":"foo", "symbols":["A1"]}"#,
            r#"{"name":"foo","type":"enum","symbols":["A1"]}"#,
            Some(-6342190197741309591),
        ),
        (
            r#"{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}"#,
            r#"{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}"#,
            Some(-4448647247586288245),
        ),
        (
            r#"{"name":"foo","type":"fixed","size":15}"#,
            r#"{"name":"foo","type":"fixed","size":15}"#,
            Some(1756455273707447556),
        ),
        (
            r#"{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}"#,
            r#"{"name":"x.y.z.foo","type":"fixed","size":32}"#,
            Some(-3064184465700546786),
        ),
        (
            r#"{ "items":{"type":"null"}, "type":"array"}"#,
            r#"{"type":"array","items":"null"}"#,
            Some(-589620603366471059),
        ),
        (r#"{ "values":"string", "type":"map"}"#, r#"{"type":"map","values":"string"}"#, Some(-8732877298790414990)),
        (
            r#"{"name":"PigValue","type":"record",
                "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}"#,
            r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
            Some(-1759257747318642341),
        ),
    ];

    #[test]
    fn the_canonical_form_and_fingerprint_match_the_specifications_test_vectors() {
        for (input, canonical, fingerprint) in SPEC_VECTORS {
            let form = standard::parsing_canonical_form(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(form, *canonical, "canonical form of {input}");
            let header = standard::fingerprint(input).unwrap();
            // The file's numbers are the CRC as a signed 64-bit integer; the header holds it little-endian.
            assert_eq!(header, (standard::crc64_avro(canonical.as_bytes())).to_le_bytes());
            if let Some(expected) = fingerprint {
                assert_eq!(i64::from_le_bytes(header), *expected, "fingerprint of {input}");
            }
        }
        // The three the issue quotes, as the bytes a header carries (also what fastavro prints).
        assert_eq!(standard::fingerprint(r#""long""#).unwrap(), [0xb7, 0x1d, 0xf4, 0x93, 0x44, 0xe1, 0x54, 0xd0]);
        assert_eq!(standard::fingerprint(r#""null""#).unwrap(), [0x8a, 0x8f, 0x25, 0xcc, 0xe7, 0x24, 0xdd, 0x63]);
        assert_eq!(
            standard::fingerprint(r#"{"name":"foo","type":"fixed","size":15}"#).unwrap(),
            [0x04, 0xa5, 0x31, 0xed, 0xc3, 0x2e, 0x60, 0x18]
        );
    }

    #[test]
    fn the_canonical_form_strips_logical_types_and_qualifies_nested_names() {
        let schema = r#"{
          "type": "record", "name": "Order", "namespace": "shop.orders", "doc": "An order", "aliases": ["Purchase"],
          "fields": [
            {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "when"},
            {"name": "paid_on", "type": ["null", {"type": "int", "logicalType": "date"}], "default": null},
            {"name": "total", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["OPEN", "PAID"], "default": "OPEN"},
             "order": "descending"},
            {"name": "lines", "type": {"type": "array", "items": {
              "type": "record", "name": "Line",
              "fields": [
                {"name": "sku", "type": {"type": "fixed", "name": "Sku", "size": "016", "namespace": "shop.catalog"}},
                {"name": "state", "type": "Status"},
                {"name": "tags", "type": {"type": "map", "values": {"type": "string"}}}
              ]
            }}},
            {"name": "previous", "type": ["null", "Order"]},
            {"name": "other_sku", "type": "shop.catalog.Sku"},
            {"name": "payment", "type": {"type": "record", "name": "billing.Payment", "namespace": "ignored",
              "fields": [{"name": "card", "type": {"type": "fixed", "name": "Card", "size": 8}}]}},
            {"name": "waits", "type": {"type": "fixed", "name": "Wait", "size": 12, "logicalType": "duration"}}
          ]
        }"#;
        // fastavro 1.13.1's `to_parsing_canonical_form` gives this text too, except that it keeps the
        // quoted size as written (`016`) where the INTEGERS rule says 16.
        let expected = concat!(
            r#"{"name":"shop.orders.Order","type":"record","fields":["#,
            r#"{"name":"placed_at","type":"long"},"#,
            r#"{"name":"paid_on","type":["null","int"]},"#,
            r#"{"name":"total","type":"bytes"},"#,
            r#"{"name":"id","type":"string"},"#,
            r#"{"name":"status","type":{"name":"shop.orders.Status","type":"enum","symbols":["OPEN","PAID"]}},"#,
            r#"{"name":"lines","type":{"type":"array","items":{"name":"shop.orders.Line","type":"record","fields":["#,
            r#"{"name":"sku","type":{"name":"shop.catalog.Sku","type":"fixed","size":16}},"#,
            r#"{"name":"state","type":"shop.orders.Status"},"#,
            r#"{"name":"tags","type":{"type":"map","values":"string"}}]}}},"#,
            r#"{"name":"previous","type":["null","shop.orders.Order"]},"#,
            r#"{"name":"other_sku","type":"shop.catalog.Sku"},"#,
            r#"{"name":"payment","type":{"name":"billing.Payment","type":"record","fields":["#,
            r#"{"name":"card","type":{"name":"billing.Card","type":"fixed","size":8}}]}},"#,
            r#"{"name":"waits","type":{"name":"shop.orders.Wait","type":"fixed","size":12}}]}"#,
        );
        assert_eq!(standard::parsing_canonical_form(schema).unwrap(), expected);
        // A string escaped in the JSON is plain UTF-8 in the canonical form (STRINGS).
        let escaped = r#"{"type":"enum","name":"\u0045num","symbols":["\u0041"],"doc":"\u00e9"}"#;
        assert_eq!(
            standard::parsing_canonical_form(escaped).unwrap(),
            r#"{"name":"Enum","type":"enum","symbols":["A"]}"#
        );
        // A type of the null namespace stays reachable by its short name from inside a namespace.
        let null_namespace = r#"[{"type":"fixed","name":"Hash","size":4},
            {"type":"record","name":"R","namespace":"n","fields":[{"name":"h","type":"Hash"}]}]"#;
        assert_eq!(
            standard::parsing_canonical_form(null_namespace).unwrap(),
            r#"[{"name":"Hash","type":"fixed","size":4},{"name":"n.R","type":"record","fields":[{"name":"h","type":"Hash"}]}]"#
        );
    }

    #[test]
    fn an_invalid_schema_is_a_clear_error() {
        use standard::{parsing_canonical_form as pcf, CanonicalFormError as E};
        assert!(matches!(pcf("{"), Err(E::NotJson(_))));
        assert!(matches!(pcf("42"), Err(E::NotASchema(_))));
        assert!(matches!(pcf(r#"{"name":"x"}"#), Err(E::MissingAttribute { attribute: "type", .. })));
        assert_eq!(pcf(r#""Nowhere""#), Err(E::UnknownName("Nowhere".into())));
        assert_eq!(pcf(r#"{"type":"error","name":"E","fields":[]}"#), Err(E::UnknownName("error".into())));
        assert!(matches!(
            pcf(r#"{"type":"fixed","name":"f","size":-1}"#),
            Err(E::MissingAttribute { attribute: "size", .. })
        ));
        assert!(matches!(
            pcf(r#"{"type":"fixed","name":"f","size":"1x"}"#),
            Err(E::MissingAttribute { attribute: "size", .. })
        ));
        assert!(matches!(
            pcf(r#"{"type":"enum","name":"e","symbols":[1]}"#),
            Err(E::MissingAttribute { attribute: "symbols", .. })
        ));
        assert!(matches!(pcf(r#"{"type":"array"}"#), Err(E::MissingAttribute { attribute: "items", .. })));
        assert!(matches!(
            pcf(r#"{"type":"record","name":"r","fields":[{"name":"a"}]}"#),
            Err(E::MissingAttribute { attribute: "type", .. })
        ));
        assert_eq!(
            pcf(
                r#"["null",{"type":"fixed","name":"f","namespace":"n","size":1},{"type":"fixed","name":"n.f","size":2}]"#
            ),
            Err(E::DefinedTwice("n.f".into()))
        );
    }

    /// Our schemas' canonical forms and fingerprints as fastavro 1.13.1 computes them (the v1 files
    /// never change). `tests/avro_standard.rs` checks every schema and every topic against fastavro.
    #[test]
    fn our_schemas_fingerprints_are_fastavros() {
        let revenue_v1 = include_str!("../avro/revenue_event.v1.avsc");
        assert_eq!(
            standard::parsing_canonical_form(revenue_v1).unwrap(),
            concat!(
                r#"{"name":"coupang_etl.raw.RevenueEvent","type":"record","fields":[{"name":"vendor_id","type":"string"},"#,
                r#"{"name":"account_alias","type":"string"},{"name":"collected_at","type":"long"},"#,
                r#"{"name":"order_id","type":"long"},{"name":"sale_type","type":"string"},{"name":"sale_date","type":"int"},"#,
                r#"{"name":"recognition_date","type":"int"},{"name":"delivery_fee","type":"long"},"#,
                r#"{"name":"items","type":{"type":"array","items":{"name":"coupang_etl.raw.RevenueItem","type":"record","#,
                r#""fields":[{"name":"vendor_item_id","type":"long"},{"name":"quantity","type":"int"},"#,
                r#"{"name":"sale_price","type":"long"},{"name":"seller_discount_coupon","type":"long"},"#,
                r#"{"name":"downloadable_coupon","type":"long"},{"name":"coupang_discount_coupon","type":"long"},"#,
                r#"{"name":"sale_amount","type":"long"},{"name":"settlement_amount","type":"long"}]}}}]}"#,
            )
        );
        let hex = |bytes: [u8; 8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let fastavro = [
            (include_str!("../avro/order_sheet_event.v1.avsc"), "458804a5e687f00d"),
            (include_str!("../avro/order_state.v1.avsc"), "3384def375e993d7"),
            (include_str!("../avro/payment_fact.v1.avsc"), "370eac23513ab94b"),
            (include_str!("../avro/order_payment_facts.v1.avsc"), "c0f71da6cbf745f5"),
            (include_str!("../avro/return_request_event.v1.avsc"), "023423218b4ffafb"),
            (revenue_v1, "9f87116328f84b3a"),
        ];
        for (text, expected) in fastavro {
            assert_eq!(hex(standard::fingerprint(text).unwrap()), expected);
            // The fingerprints differ from apache-avro's because its canonical form keeps the logical
            // types as objects: every one of these schemas has a timestamp or a date.
            assert_ne!(standard::fingerprint(text).unwrap(), legacy_fingerprint(&Schema::parse_str(text).unwrap()));
        }
    }

    /// Same CRC and byte order as apache-avro's Rabin digest: only the text hashed differs.
    #[test]
    fn the_crc_is_apache_avros_rabin() {
        for text in OrderSheetEvent::history().iter().chain(PaymentFact::history()) {
            let schema = Schema::parse_str(text).unwrap();
            assert_eq!(
                standard::crc64_avro(schema.canonical_form().as_bytes()).to_le_bytes(),
                legacy_fingerprint(&schema)
            );
        }
        assert_eq!(standard::crc64_avro(b""), 0xc15d_213a_a4d7_a795);
    }

    /// Every schema of an event's history, by either fingerprint, and the writer's header.
    fn both_fingerprints_find_every_schema<T: EventType>() -> Vec<[u8; 8]> {
        let schemas = schemas::<T>();
        let mut fingerprints = Vec::new();
        for text in T::history() {
            let schema = Schema::parse_str(text).unwrap();
            for fingerprint in [standard::fingerprint(text).unwrap(), legacy_fingerprint(&schema)] {
                let found = schemas.by_fingerprint.get(&fingerprint);
                assert_eq!(found.map(Schema::canonical_form), Some(schema.canonical_form()), "{}", T::NAME);
                fingerprints.push(fingerprint);
            }
        }
        let current = T::history().last().unwrap();
        assert_eq!(schemas.current_fingerprint, standard::fingerprint(current).unwrap(), "{}", T::NAME);
        assert!(schemas.is_current(&legacy_fingerprint(&Schema::parse_str(current).unwrap())));
        fingerprints
    }

    #[test]
    fn readers_find_every_schema_by_the_standard_and_the_legacy_fingerprint() {
        let mut all = both_fingerprints_find_every_schema::<OrderSheetEvent>();
        all.extend(both_fingerprints_find_every_schema::<crate::ReturnRequestEvent>());
        all.extend(both_fingerprints_find_every_schema::<crate::RevenueEvent>());
        all.extend(both_fingerprints_find_every_schema::<PaymentFact>());
        all.extend(both_fingerprints_find_every_schema::<crate::OrderPaymentFacts>());
        all.extend(both_fingerprints_find_every_schema::<crate::OrderStateRecord>());
        all.extend(both_fingerprints_find_every_schema::<crate::SettlementEvent>());
        // No fingerprint names schemas of two event types: a record of one type is never read as another.
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{all:02x?}");
    }

    /// A record as the codec wrote it before the specification's fingerprint: apache-avro's in the header.
    fn with_legacy_header<T: EventType>(mut bytes: Vec<u8>) -> Vec<u8> {
        let current = Schema::parse_str(T::history().last().unwrap()).unwrap();
        bytes[2..HEADER_LEN].copy_from_slice(&legacy_fingerprint(&current));
        bytes
    }

    #[test]
    fn records_written_with_the_legacy_fingerprint_still_decode() {
        let sheet = event();
        let standard = encode(&sheet).unwrap();
        assert_eq!(standard[2..HEADER_LEN], standard::fingerprint(OrderSheetEvent::history().last().unwrap()).unwrap());
        let legacy = with_legacy_header::<OrderSheetEvent>(standard.clone());
        assert_ne!(legacy, standard);
        assert_eq!(decode::<OrderSheetEvent>(&legacy).unwrap(), sheet);
        assert_eq!(decode_with_apache_avro::<OrderSheetEvent>(&legacy).unwrap(), sheet);
        assert_eq!(decode_with_apache_avro::<OrderSheetEvent>(&standard).unwrap(), sheet);
        // The changelog's state holds raw records as they were written: either header inside it.
        let state = crate::OrderStateRecord {
            vendor_id: "A00012345".into(),
            order_id: 24_000_057_163_001,
            source_time: 1,
            boxes: vec![legacy, standard],
            receipts: vec![],
            revenue: vec![],
        };
        let legacy_state = with_legacy_header::<crate::OrderStateRecord>(encode(&state).unwrap());
        let read = decode::<crate::OrderStateRecord>(&legacy_state).unwrap();
        assert_eq!(read, state);
        for sheet_bytes in &read.boxes {
            assert_eq!(decode::<OrderSheetEvent>(sheet_bytes).unwrap(), sheet);
        }
        // A legacy record cut short is refused as before.
        let cut = &legacy_state[..legacy_state.len() - 1];
        assert!(matches!(decode::<crate::OrderStateRecord>(cut), Err(CodecError::Malformed { .. })));
    }

    proptest! {
        #[test]
        fn facts_round_trip(order_id in any::<i64>(), amount in any::<i64>(), date in any::<i32>(),
                            provisional in any::<bool>(), name in ".{0,20}") {
            let fact = PaymentFact {
                vendor_id: "C00000001".into(), account_alias: "b".into(), order_id,
                vendor_item_id: 5, shipment_box_id: 6, vendor_item_name: name,
                payment_date: date, paid_at: 1, status: "ACCEPT".into(), quantity: 1,
                cancelled_quantity: 0, order_price: amount, shipping_fee: 0,
                seller_coupon_discount: 0, coupang_coupon_discount: 0, payment_amount: amount,
                provisional, cancelled: false, event_time: 2, version: 3,
                change_cause: crate::ChangeCause::Confirmation, previous_payment_amount: Some(amount / 2),
            };
            prop_assert_eq!(encode(&fact).unwrap(), encode_via_value(&fact));
            prop_assert_eq!(fact.kafka_key(), fact.fact_key().to_string());
            written_directly_as_apache_avro_writes(&fact);
            prop_assert_eq!(decode::<PaymentFact>(&encode(&fact).unwrap()).unwrap(), fact);
        }

        /// The datum reader, and `decode` (by hand where a type has a reader of its own), against
        /// apache-avro, on corrupted records: a byte changed, the datum cut short or grown. All refuse,
        /// or all read the same event.
        #[test]
        fn the_datum_reader_agrees_with_apache_avro_on_corrupted_records(
            at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in 0usize..4, grow in 0usize..3,
            confirmed in any::<bool>(),
        ) {
            let mut sheet = event();
            if confirmed {
                sheet.items[0].confirm_date = Some(1_760_300_000_000);
            }
            let state = crate::OrderStateRecord {
                vendor_id: "A00012345".into(), order_id: 7, source_time: 9,
                boxes: vec![encode(&sheet).unwrap()], receipts: vec![], revenue: vec![vec![1, 2, 3]],
            };
            fn agree<T: EventType + PartialEq + std::fmt::Debug>(
                good: Vec<u8>, at: &prop::sample::Index, byte: u8, cut: usize, grow: usize,
            ) -> Result<(), TestCaseError> {
                let mut bytes = good.clone();
                let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
                bytes[i] = byte;
                bytes.truncate(bytes.len() - cut.min(bytes.len() - HEADER_LEN));
                bytes.extend(std::iter::repeat_n(byte, grow));
                let reference = decode_with_apache_avro::<T>(&bytes);
                for fast in [decode::<T>(&bytes), decode_with_datum_reader::<T>(&bytes)] {
                    match (&fast, &reference) {
                        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                        (Err(_), Err(_)) => {}
                        _ => prop_assert!(false, "reader {:?} but apache-avro {:?} for {:02x?}", fast, reference, bytes),
                    }
                }
                Ok(())
            }
            agree::<OrderSheetEvent>(encode(&sheet).unwrap(), &at, byte, cut, grow)?;
            agree::<crate::OrderStateRecord>(encode(&state).unwrap(), &at, byte, cut, grow)?;
        }

        /// The hand-written fact encoder against the schema-driven one, on any fact.
        #[test]
        fn a_fact_written_by_hand_is_what_the_schema_writes(
            texts in proptest::array::uniform5(".{0,40}"), ids in proptest::array::uniform3(any::<i64>()),
            ints in proptest::array::uniform3(any::<i32>()), longs in proptest::array::uniform8(any::<i64>()),
            flags in proptest::array::uniform2(any::<bool>()), previous in proptest::option::of(any::<i64>()),
            known_status in prop::sample::select(vec!["ACCEPT", "DEPARTURE", "CONFIRMED", "CANCELLED", "RETURNED"]),
            known_cause in prop::sample::select(crate::ChangeCause::KNOWN), known_words in any::<bool>(),
            copies in 0usize..4,
        ) {
            let [vendor_id, account_alias, vendor_item_name, status, change_cause] = texts;
            let (status, change_cause) = if known_words {
                (crate::FactStatus::from(known_status), known_cause)
            } else {
                (crate::FactStatus::from(status.as_str()), crate::ChangeCause::from(change_cause.as_str()))
            };
            let fact = PaymentFact {
                vendor_id, account_alias, order_id: ids[0], vendor_item_id: ids[1], shipment_box_id: ids[2],
                vendor_item_name, payment_date: ints[0], paid_at: longs[0], status, quantity: ints[1],
                cancelled_quantity: ints[2], order_price: longs[1], shipping_fee: longs[2],
                seller_coupon_discount: longs[3], coupang_coupon_discount: longs[4], payment_amount: longs[5],
                provisional: flags[0], cancelled: flags[1], event_time: longs[6], version: longs[7],
                change_cause, previous_payment_amount: previous,
            };
            let written = encode_fact(&fact);
            prop_assert_eq!(&written, &written_by_the_datum_writer::<PaymentFact>(&fact));
            prop_assert_eq!(decode::<PaymentFact>(&written).unwrap(), fact.clone());
            // The same fact as an order's record's items, 0 to 3 of them.
            let facts = vec![fact.clone(); copies];
            let record = crate::OrderPaymentFacts { vendor_id: fact.vendor_id.clone(), order_id: fact.order_id, facts };
            let written = encode_order_facts(&record.vendor_id, record.order_id, &record.facts);
            prop_assert_eq!(&written, &written_by_the_datum_writer::<crate::OrderPaymentFacts>(&record));
            prop_assert_eq!(decode_facts(&written).unwrap(), record.facts);
        }

        /// The hand-written state record encoder against the schema-driven one, on any record.
        #[test]
        fn a_state_record_written_by_hand_is_what_the_schema_writes(
            vendor_id in ".{0,40}", order_id in any::<i64>(), source_time in any::<i64>(),
            lists in proptest::array::uniform3(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..4)
            ),
        ) {
            let [boxes, receipts, revenue] = lists.map(|list| list.into_iter().map(std::borrow::Cow::Owned).collect());
            let view = crate::OrderStateRecordView {
                vendor_id: &vendor_id, order_id, source_time, boxes, receipts, revenue,
            };
            let written = encode_state_record(&view);
            prop_assert_eq!(&written, &written_by_the_datum_writer::<crate::OrderStateRecord>(&view));
            let read = decode::<crate::OrderStateRecord>(&written).unwrap();
            prop_assert_eq!(
                (read.vendor_id.as_str(), read.order_id, read.source_time, read.revenue.len()),
                (vendor_id.as_str(), order_id, source_time, view.revenue.len())
            );
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode::<OrderSheetEvent>(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&schemas::<OrderSheetEvent>().current_fingerprint);
            framed.extend_from_slice(&bytes);
            let _ = decode::<OrderSheetEvent>(&framed);
            let _ = decode::<OrderSheetEvent>(&with_legacy_header::<OrderSheetEvent>(framed));
        }
    }
}
