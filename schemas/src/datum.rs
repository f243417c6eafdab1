//! Avro binary datums read straight into serde types, and written straight from them, driven by the
//! schema.
//!
//! apache-avro 0.21 decodes a datum into a `Value` tree, cloning every field name, and serde then
//! reads the tree: for the transform and the loader that was most of their CPU time (see
//! BENCHMARKS.md). This reader walks the bytes once and hands each value to the type's `Deserialize`
//! as it goes. It covers the schema types this project's `.avsc` files use (records, arrays, unions
//! with null, strings, bytes, booleans, ints, longs and their date/time logical types), and refuses
//! anything else and any malformed datum with an error, never a panic or an unbounded allocation.
//! Tests check it against apache-avro's own decoding, byte for byte, on valid and corrupted input.

use apache_avro::schema::{Name, Schema};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashMap;
use std::fmt;

#[derive(Debug)]
pub struct DatumError(pub String);

impl fmt::Display for DatumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DatumError {}

impl de::Error for DatumError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        DatumError(message.to_string())
    }
}

impl serde::ser::Error for DatumError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        DatumError(message.to_string())
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, DatumError> {
    Err(DatumError(message.into()))
}

/// The named types of a schema, for `Ref`s to types defined earlier in it.
pub struct Names(HashMap<Name, Schema>);

impl Names {
    pub fn of(schema: &Schema) -> Names {
        fn walk(schema: &Schema, names: &mut HashMap<Name, Schema>) {
            match schema {
                Schema::Record(record) => {
                    names.insert(record.name.clone(), schema.clone());
                    record.fields.iter().for_each(|field| walk(&field.schema, names));
                }
                Schema::Array(array) => walk(&array.items, names),
                Schema::Map(map) => walk(&map.types, names),
                Schema::Union(union) => union.variants().iter().for_each(|variant| walk(variant, names)),
                Schema::Enum(e) => {
                    names.insert(e.name.clone(), schema.clone());
                }
                Schema::Fixed(f) => {
                    names.insert(f.name.clone(), schema.clone());
                }
                _ => {}
            }
        }
        let mut names = HashMap::new();
        walk(schema, &mut names);
        Names(names)
    }
}

/// Reads one datum written with `schema` from the front of `input` (which is advanced past it).
pub fn from_datum<T: DeserializeOwned>(schema: &Schema, names: &Names, input: &mut &[u8]) -> Result<T, DatumError> {
    let mut reader = Reader { input, names };
    T::deserialize(Datum { schema, reader: &mut reader })
}

struct Reader<'r, 'b> {
    input: &'r mut &'b [u8],
    names: &'r Names,
}

impl Reader<'_, '_> {
    fn byte(&mut self) -> Result<u8, DatumError> {
        let (&first, rest) = self.input.split_first().ok_or_else(|| DatumError("the datum ends early".into()))?;
        *self.input = rest;
        Ok(first)
    }

    fn long(&mut self) -> Result<i64, DatumError> {
        read_long(self.input).map_err(|unread| match unread {
            UnreadLong::EndsEarly => DatumError("the datum ends early".into()),
            UnreadLong::Overflows => DatumError("a long overflows 64 bits".into()),
        })
    }

    fn int(&mut self) -> Result<i32, DatumError> {
        let value = self.long()?;
        i32::try_from(value).map_err(|_| DatumError(format!("int {value} is out of range")))
    }

    /// A length-prefixed run of bytes, which must be in the datum.
    fn bytes(&mut self) -> Result<&[u8], DatumError> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| DatumError(format!("negative length {len}")))?;
        if len > self.input.len() {
            return fail(format!("a length of {len} runs past the datum's end"));
        }
        let (taken, rest) = self.input.split_at(len);
        *self.input = rest;
        Ok(taken)
    }
}

/// Why a long did not read.
pub(crate) enum UnreadLong {
    EndsEarly,
    /// Ten bytes, each saying another follows.
    Overflows,
}

/// A zig-zag varint of at most 10 bytes from the front of `input` (which is advanced past it). Bits
/// past the 64th are dropped, as apache-avro does (the fuzzer found the difference; every reader here
/// must agree on every input, so they all read longs with this).
#[inline]
pub(crate) fn read_long(input: &mut &[u8]) -> Result<i64, UnreadLong> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err(if input.len() < 10 { UnreadLong::EndsEarly } else { UnreadLong::Overflows })
}

/// The schema itself, or the named type a `Ref` points to.
#[inline]
fn resolve<'x>(names: &'x Names, schema: &'x Schema) -> Result<&'x Schema, DatumError> {
    match schema {
        Schema::Ref { name } => names.0.get(name).ok_or_else(|| DatumError(format!("unknown type {name}"))),
        other => Ok(other),
    }
}

/// One value of `schema` at the reader's position.
struct Datum<'s, 'a, 'r, 'b> {
    schema: &'s Schema,
    reader: &'a mut Reader<'r, 'b>,
}

impl<'de> de::Deserializer<'de> for Datum<'_, '_, '_, '_> {
    type Error = DatumError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DatumError> {
        let reader = self.reader;
        let names = reader.names;
        match resolve(names, self.schema)? {
            Schema::Null => visitor.visit_unit(),
            Schema::Boolean => match reader.byte()? {
                0 => visitor.visit_bool(false),
                1 => visitor.visit_bool(true),
                other => fail(format!("a boolean byte is {other}")),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => visitor.visit_i32(reader.int()?),
            Schema::Long
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::TimeMicros => visitor.visit_i64(reader.long()?),
            Schema::String => {
                let text = std::str::from_utf8(reader.bytes()?).map_err(|e| DatumError(format!("a string: {e}")))?;
                visitor.visit_str(text)
            }
            Schema::Bytes => visitor.visit_byte_buf(reader.bytes()?.to_vec()),
            Schema::Union(union) => {
                let index = reader.long()?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| DatumError(format!("union index {index} is out of range")))?;
                match resolve(names, variant)? {
                    Schema::Null => visitor.visit_none(),
                    _ => visitor.visit_some(Datum { schema: variant, reader }),
                }
            }
            Schema::Array(array) => visitor.visit_seq(Items { schema: &array.items, reader, left: 0, done: false }),
            Schema::Record(record) => visitor.visit_map(Fields { fields: &record.fields, next: 0, reader }),
            other => fail(format!("schema type {other:?} is not supported by the datum reader")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DatumError> {
        match resolve(self.reader.names, self.schema)? {
            Schema::Union(_) => self.deserialize_any(visitor),
            _ => visitor.visit_some(self),
        }
    }

    /// A newtype (`struct Bytes(Vec<u8>)`) is its one field's value.
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, DatumError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// An array's items, in blocks: a count (negative: followed by the block's size in bytes), then as
/// many items; a zero count ends the array.
struct Items<'s, 'a, 'r, 'b> {
    schema: &'s Schema,
    reader: &'a mut Reader<'r, 'b>,
    left: u64,
    done: bool,
}

impl<'de> SeqAccess<'de> for Items<'_, '_, '_, '_> {
    type Error = DatumError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DatumError> {
        while self.left == 0 {
            if self.done {
                return Ok(None);
            }
            let count = self.reader.long()?;
            if count == 0 {
                self.done = true;
                return Ok(None);
            }
            if count < 0 {
                self.reader.long()?; // the block's size in bytes, not needed
            }
            self.left = count.unsigned_abs();
        }
        self.left -= 1;
        seed.deserialize(Datum { schema: self.schema, reader: self.reader }).map(Some)
    }
}

/// A record's fields, in the schema's order, each named.
struct Fields<'s, 'a, 'r, 'b> {
    fields: &'s [apache_avro::schema::RecordField],
    next: usize,
    reader: &'a mut Reader<'r, 'b>,
}

impl<'de> MapAccess<'de> for Fields<'_, '_, '_, '_> {
    type Error = DatumError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DatumError> {
        match self.fields.get(self.next) {
            Some(field) => seed.deserialize(field.name.as_str().into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DatumError> {
        let field =
            self.fields.get(self.next).ok_or_else(|| DatumError("a value after the record's last field".into()))?;
        self.next += 1;
        seed.deserialize(Datum { schema: &field.schema, reader: self.reader })
    }
}

/// Writes `value` as one datum of `schema` to `out`: the same bytes as apache-avro's
/// `write_avro_datum_ref` (tested), without its per-field name lookups. Refuses (with an error, and
/// `out` possibly partly written) values whose shape does not follow the schema field by field.
pub fn to_datum<T: serde::Serialize>(
    value: &T,
    schema: &Schema,
    names: &Names,
    out: &mut Vec<u8>,
) -> Result<(), DatumError> {
    value.serialize(DatumWriter { schema, names, out })
}

/// apache-avro writes arrays in blocks of at most this many items (its serializer's buffer limit + 1).
pub(crate) const BLOCK_ITEMS: usize = 1025;

pub(crate) fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

struct DatumWriter<'s, 'o> {
    schema: &'s Schema,
    names: &'s Names,
    out: &'o mut Vec<u8>,
}

impl<'s, 'o> DatumWriter<'s, 'o> {
    fn schema(&self) -> Result<&'s Schema, DatumError> {
        resolve(self.names, self.schema)
    }

    fn integer(self, value: i64) -> Result<(), DatumError> {
        match self.schema()? {
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                i32::try_from(value).map_err(|_| DatumError(format!("{value} does not fit an int")))?;
                write_long(self.out, value);
                Ok(())
            }
            Schema::Long
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::TimeMicros => {
                write_long(self.out, value);
                Ok(())
            }
            other => fail(format!("an integer for schema {other:?}")),
        }
    }

    fn length_prefixed(self, bytes: &[u8], expected: &Schema) -> Result<(), DatumError> {
        let schema = self.schema()?;
        if std::mem::discriminant(schema) != std::mem::discriminant(expected) {
            return fail(format!("{expected:?} for schema {schema:?}"));
        }
        write_long(self.out, bytes.len() as i64);
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

fn unsupported<T>(what: &str) -> Result<T, DatumError> {
    fail(format!("{what} is not supported by the datum writer"))
}

impl<'s, 'o> serde::Serializer for DatumWriter<'s, 'o> {
    type Ok = ();
    type Error = DatumError;
    type SerializeSeq = ItemsWriter<'s, 'o>;
    type SerializeTuple = serde::ser::Impossible<(), DatumError>;
    type SerializeTupleStruct = serde::ser::Impossible<(), DatumError>;
    type SerializeTupleVariant = serde::ser::Impossible<(), DatumError>;
    type SerializeMap = serde::ser::Impossible<(), DatumError>;
    type SerializeStruct = FieldsWriter<'s, 'o>;
    type SerializeStructVariant = serde::ser::Impossible<(), DatumError>;

    fn serialize_bool(self, v: bool) -> Result<(), DatumError> {
        match self.schema()? {
            Schema::Boolean => {
                self.out.push(u8::from(v));
                Ok(())
            }
            other => fail(format!("a boolean for schema {other:?}")),
        }
    }
    fn serialize_i8(self, v: i8) -> Result<(), DatumError> {
        self.integer(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), DatumError> {
        self.integer(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), DatumError> {
        self.integer(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), DatumError> {
        self.integer(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), DatumError> {
        self.integer(i64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), DatumError> {
        self.integer(i64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), DatumError> {
        self.integer(i64::from(v))
    }
    fn serialize_u64(self, _: u64) -> Result<(), DatumError> {
        unsupported("u64")
    }
    fn serialize_f32(self, _: f32) -> Result<(), DatumError> {
        unsupported("f32")
    }
    fn serialize_f64(self, _: f64) -> Result<(), DatumError> {
        unsupported("f64")
    }
    fn serialize_char(self, _: char) -> Result<(), DatumError> {
        unsupported("char")
    }
    fn serialize_str(self, v: &str) -> Result<(), DatumError> {
        self.length_prefixed(v.as_bytes(), &Schema::String)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), DatumError> {
        self.length_prefixed(v, &Schema::Bytes)
    }
    fn serialize_none(self) -> Result<(), DatumError> {
        match self.schema()? {
            Schema::Union(union) => match union.variants().iter().position(|v| matches!(v, Schema::Null)) {
                Some(index) => {
                    write_long(self.out, index as i64);
                    Ok(())
                }
                None => fail("None for a union without null"),
            },
            Schema::Null => Ok(()),
            other => fail(format!("None for schema {other:?}")),
        }
    }
    fn serialize_some<T: ?Sized + serde::Serialize>(self, value: &T) -> Result<(), DatumError> {
        match self.schema()? {
            // As apache-avro does: the union's first variant that is not null.
            Schema::Union(union) => match union.variants().iter().position(|v| !matches!(v, Schema::Null)) {
                Some(index) => {
                    write_long(self.out, index as i64);
                    let schema = &union.variants()[index];
                    value.serialize(DatumWriter { schema, names: self.names, out: self.out })
                }
                None => fail("a value for a union of null alone"),
            },
            _ => value.serialize(self),
        }
    }
    fn serialize_unit(self) -> Result<(), DatumError> {
        unsupported("unit")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), DatumError> {
        unsupported("unit struct")
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), DatumError> {
        unsupported("enum")
    }
    fn serialize_newtype_struct<T: ?Sized + serde::Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), DatumError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + serde::Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), DatumError> {
        unsupported("enum")
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<ItemsWriter<'s, 'o>, DatumError> {
        let (Schema::Array(array), Some(len)) = (self.schema()?, len) else {
            return fail("a sequence of unknown length, or for a schema that is not an array");
        };
        Ok(ItemsWriter { items: &array.items, names: self.names, out: self.out, len, written: 0 })
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, DatumError> {
        unsupported("tuple")
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, DatumError> {
        unsupported("tuple struct")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, DatumError> {
        unsupported("enum")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, DatumError> {
        unsupported("map")
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<FieldsWriter<'s, 'o>, DatumError> {
        match self.schema()? {
            Schema::Record(record) => {
                Ok(FieldsWriter { fields: &record.fields, names: self.names, out: self.out, next: 0 })
            }
            other => fail(format!("a struct for schema {other:?}")),
        }
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, DatumError> {
        unsupported("enum")
    }
}

/// An array's items, in apache-avro's blocks, then the closing zero count.
struct ItemsWriter<'s, 'o> {
    items: &'s Schema,
    names: &'s Names,
    out: &'o mut Vec<u8>,
    len: usize,
    written: usize,
}

impl serde::ser::SerializeSeq for ItemsWriter<'_, '_> {
    type Ok = ();
    type Error = DatumError;

    fn serialize_element<T: ?Sized + serde::Serialize>(&mut self, value: &T) -> Result<(), DatumError> {
        if self.written >= self.len {
            return fail("more items than announced");
        }
        if self.written.is_multiple_of(BLOCK_ITEMS) {
            write_long(self.out, BLOCK_ITEMS.min(self.len - self.written) as i64);
        }
        self.written += 1;
        value.serialize(DatumWriter { schema: self.items, names: self.names, out: self.out })
    }

    fn end(self) -> Result<(), DatumError> {
        if self.written != self.len {
            return fail("fewer items than announced");
        }
        self.out.push(0);
        Ok(())
    }
}

/// A record's fields, which must come in the schema's order and under its names.
struct FieldsWriter<'s, 'o> {
    fields: &'s [apache_avro::schema::RecordField],
    names: &'s Names,
    out: &'o mut Vec<u8>,
    next: usize,
}

impl serde::ser::SerializeStruct for FieldsWriter<'_, '_> {
    type Ok = ();
    type Error = DatumError;

    fn serialize_field<T: ?Sized + serde::Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), DatumError> {
        let field = match self.fields.get(self.next) {
            Some(field) if field.name == key => field,
            _ => return fail(format!("field {key} is not the schema's field number {}", self.next + 1)),
        };
        self.next += 1;
        value.serialize(DatumWriter { schema: &field.schema, names: self.names, out: self.out })
    }

    fn end(self) -> Result<(), DatumError> {
        match self.fields.get(self.next) {
            Some(missing) => fail(format!("field {} was not written", missing.name)),
            None => Ok(()),
        }
    }
}
