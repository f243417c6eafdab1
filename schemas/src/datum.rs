//! Avro binary datums read straight into serde types, driven by the writer's schema.
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

    /// A zig-zag varint of at most 10 bytes.
    fn long(&mut self) -> Result<i64, DatumError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            if shift == 63 && byte > 1 {
                return fail("a long overflows 64 bits");
            }
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        fail("a long overflows 64 bits")
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

/// The schema itself, or the named type a `Ref` points to.
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
