//! SQLite's binary JSON (JSONB, <https://sqlite.org/jsonb.html>) for the rows of an import
//! step: one array per row, its values in the order of the statement's fields, read by
//! [`super::jsonb_rows`] (`usher_rows`, see [`super::step_data::rows_from`]).
//!
//! SQLite found each field of a JSON object by comparing keys from the object's start, and
//! parsed the step's text before that: for a step of new people, most of the insert's time
//! outside the B-trees. Nothing here needs escaping: each value is copied behind its header,
//! and an integer is its decimal text, as JSONB has it.
//!
//! The rows are the same `Serialize` structs that PostgreSQL reads as JSON text; each struct's
//! fields must come in the order of the statement's [`Fields`], which is checked as each row is
//! written (a field out of place would otherwise land in another column).

use std::fmt::Display;

use serde::ser::{self, Impossible, Serialize};

use super::Fields;

/// Element types (the low four bits of a header's first byte); [`super::jsonb_rows`] reads
/// them back.
pub(super) const NULL: u8 = 0;
pub(super) const TRUE: u8 = 1;
pub(super) const FALSE: u8 = 2;
pub(super) const INT: u8 = 3;
/// A string without escapes: written by no one here, read as `TEXT_RAW` is.
pub(super) const TEXT: u8 = 7;
/// A string stored as it is, which SQLite escapes if it ever renders it as JSON text.
pub(super) const TEXT_RAW: u8 = 10;
pub(super) const ARRAY: u8 = 11;

/// The header of an array whose size is written once its elements are: size code 14, then a
/// four-byte size. SQLite reads a header wider than its payload needs.
const ARRAY_HEADER: [u8; 5] = [0xe0 | ARRAY, 0, 0, 0, 0];

/// `rows` as one JSONB array of arrays, each row's values in the order of `fields`.
pub(super) fn rows<T: Serialize>(
    fields: Fields,
    rows: impl IntoIterator<Item = T>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let outer = open_array(&mut out);
    for row in rows {
        let start = open_array(&mut out);
        let mut writer = RowWriter {
            out: &mut out,
            fields,
            next: 0,
        };
        row.serialize(&mut writer).map_err(|e| e.0)?;
        if writer.next != fields.len() {
            return Err(format!(
                "a row gave {} of the fields {:?}",
                writer.next,
                names(fields)
            ));
        }
        close_array(&mut out, start)?;
    }
    close_array(&mut out, outer)?;
    Ok(out)
}

fn names(fields: Fields) -> Vec<&'static str> {
    fields.iter().map(|(name, _)| *name).collect()
}

fn open_array(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&ARRAY_HEADER);
    start
}

fn close_array(out: &mut [u8], start: usize) -> Result<(), String> {
    let size = u32::try_from(out.len() - start - ARRAY_HEADER.len())
        .map_err(|_| "a step's rows come to over 4 GiB".to_owned())?;
    out[start + 1..start + ARRAY_HEADER.len()].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// A header with the smallest size field that holds `size`.
fn header(out: &mut Vec<u8>, kind: u8, size: usize) {
    if let Ok(small @ 0..=11) = u8::try_from(size) {
        out.push((small << 4) | kind);
    } else if let Ok(size) = u8::try_from(size) {
        out.extend_from_slice(&[0xc0 | kind, size]);
    } else if let Ok(size) = u16::try_from(size) {
        out.push(0xd0 | kind);
        out.extend_from_slice(&size.to_be_bytes());
    } else {
        out.push(0xe0 | kind);
        // No value of a row comes near 4 GiB: the whole step is checked against it.
        out.extend_from_slice(&u32::try_from(size).unwrap_or(u32::MAX).to_be_bytes());
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    header(out, TEXT_RAW, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// An integer's payload is its decimal text.
fn int(out: &mut Vec<u8>, n: impl Display) {
    let digits = n.to_string();
    header(out, INT, digits.len());
    out.extend_from_slice(digits.as_bytes());
}

#[derive(Debug)]
pub(super) struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

fn refused<T>(what: &str) -> Result<T, Error> {
    Err(Error(format!("JSONB rows carry no {what}")))
}

/// The `Serializer` methods a writer refuses, each answering `what`.
macro_rules! refuse {
    ($ok:ty, $what:literal: $($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, Error> { refused($what) })*
    };
}

/// The `Serializer` methods of compound values a writer refuses.
macro_rules! refuse_compounds {
    ($what:literal) => {
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<Self::Ok, Error> {
            refused($what)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
            refused($what)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
            refused($what)
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Error> {
            refused($what)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Error> {
            refused($what)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Error> {
            refused($what)
        }
    };
}

/// `Serializer` methods of narrow integers, each writing its value widened.
macro_rules! widen {
    ($($method:ident($narrow:ty) => $wide:ident),* $(,)?) => {
        $(fn $method(self, v: $narrow) -> Result<(), Error> { self.$wide(v.into()) })*
    };
}

/// Writes one row: a struct's fields, or a map's entries (a struct with flattened parts), as
/// the elements of the row's array.
struct RowWriter<'a> {
    out: &'a mut Vec<u8>,
    fields: Fields,
    next: usize,
}

impl RowWriter<'_> {
    /// The name the next field must have.
    fn expected(&self) -> Result<&'static str, Error> {
        self.fields
            .get(self.next)
            .map(|(name, _)| *name)
            .ok_or_else(|| {
                Error(format!(
                    "a row has more than the fields {:?}",
                    names(self.fields)
                ))
            })
    }

    fn value<T: ?Sized + Serialize>(&mut self, name: &str, value: &T) -> Result<(), Error> {
        if name != self.expected()? {
            return Err(Error(format!(
                "field {name:?} comes at place {} of a row, whose fields are {:?}",
                self.next,
                names(self.fields)
            )));
        }
        self.next += 1;
        value.serialize(ValueWriter(self.out))
    }
}

impl ser::SerializeStruct for &mut RowWriter<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.value(key, value)
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// A struct with `#[serde(flatten)]` parts comes as a map whose keys are its fields' names.
impl ser::SerializeMap for &mut RowWriter<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        let expected = self.expected()?;
        if !key.serialize(IsName(expected))? {
            return Err(Error(format!(
                "a field other than {expected:?} comes at place {} of a row, whose fields \
                 are {:?}",
                self.next,
                names(self.fields)
            )));
        }
        Ok(())
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.next += 1;
        value.serialize(ValueWriter(self.out))
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::Serializer for &mut RowWriter<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, Error> {
        Ok(self)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Error> {
        refused("row that is a bare value")
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Error> {
        refused("row that is a bare value")
    }

    refuse!((), "row that is a bare value":
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
    );
    refuse_compounds!("row that is not a struct");
}

/// Writes one value of a row: text, an integer, a boolean or null.
struct ValueWriter<'a>(&'a mut Vec<u8>);

impl ser::Serializer for ValueWriter<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.0.push(if v { TRUE } else { FALSE });
        Ok(())
    }
    widen!(
        serialize_i8(i8) => serialize_i64, serialize_i16(i16) => serialize_i64,
        serialize_i32(i32) => serialize_i64, serialize_u8(u8) => serialize_u64,
        serialize_u16(u16) => serialize_u64, serialize_u32(u32) => serialize_u64,
    );
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        int(self.0, v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        int(self.0, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        text(self.0, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        text(self.0, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.0.push(NULL);
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.0.push(NULL);
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.0.push(NULL);
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        text(self.0, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        refused("nested object")
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        refused("nested object")
    }

    refuse!((), "float or bytes": serialize_f32(f32), serialize_f64(f64), serialize_bytes(&[u8]));
    refuse_compounds!("nested list or enum with data");
}

/// Whether a map key is the field name given.
struct IsName(&'static str);

impl ser::Serializer for IsName {
    type Ok = bool;
    type Error = Error;
    type SerializeSeq = Impossible<bool, Error>;
    type SerializeTuple = Impossible<bool, Error>;
    type SerializeTupleStruct = Impossible<bool, Error>;
    type SerializeTupleVariant = Impossible<bool, Error>;
    type SerializeMap = Impossible<bool, Error>;
    type SerializeStruct = Impossible<bool, Error>;
    type SerializeStructVariant = Impossible<bool, Error>;

    fn serialize_str(self, v: &str) -> Result<bool, Error> {
        Ok(v == self.0)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<bool, Error> {
        refused("key that is not a name")
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<bool, Error> {
        refused("key that is not a name")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<bool, Error> {
        refused("key that is not a name")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        refused("key that is not a name")
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        refused("key that is not a name")
    }

    refuse!(bool, "key that is not a name":
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
    );
    refuse_compounds!("key that is not a name");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Inner<'a> {
        note: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct Row<'a> {
        name: &'a str,
        missing: Option<&'a str>,
        yes: bool,
        no: bool,
        n: i64,
        #[serde(flatten)]
        inner: Inner<'a>,
    }

    const FIELDS: Fields = &[
        ("name", "text"),
        ("missing", "text"),
        ("yes", "boolean"),
        ("no", "boolean"),
        ("n", "bigint"),
        ("note", "text"),
    ];

    #[test]
    fn rows_are_arrays_of_their_fields_in_order() {
        let row = Row {
            name: "ab",
            missing: None,
            yes: true,
            no: false,
            n: -3,
            inner: Inner { note: Some("") },
        };
        let bytes = rows(FIELDS, [&row]).unwrap();
        // [["ab",null,true,false,-3,""]]: outer and row headers with four-byte sizes, then
        // each value's smallest header.
        let row_payload = [0x2a, b'a', b'b', 0x00, 0x01, 0x02, 0x23, b'-', b'3', 0x0a];
        let mut expected = vec![0xeb, 0, 0, 0, 15, 0xeb, 0, 0, 0, 10];
        expected.extend_from_slice(&row_payload);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn long_texts_take_wider_headers() {
        #[derive(Serialize)]
        struct One {
            name: String,
        }
        for (len, header) in [
            (11, vec![0xba]),
            (12, vec![0xca, 12]),
            (300, vec![0xda, 1, 44]),
        ] {
            let bytes = rows(
                &[("name", "text")],
                [One {
                    name: "x".repeat(len),
                }],
            )
            .unwrap();
            assert_eq!(&bytes[10..10 + header.len()], header.as_slice(), "{len}");
            assert_eq!(bytes.len(), 10 + header.len() + len);
        }
    }

    #[test]
    fn a_field_out_of_place_is_refused() {
        let row = Row {
            name: "ab",
            missing: None,
            yes: true,
            no: false,
            n: 1,
            inner: Inner { note: None },
        };
        let swapped: Fields = &[
            ("name", "text"),
            ("yes", "boolean"),
            ("missing", "text"),
            ("no", "boolean"),
            ("n", "bigint"),
            ("note", "text"),
        ];
        assert!(rows(swapped, [&row]).is_err());
        assert!(rows(&FIELDS[..5], [&row]).is_err());
        let mut more = FIELDS.to_vec();
        more.push(("extra", "text"));
        let more: &'static [(&str, &str)] = Box::leak(more.into_boxed_slice());
        assert!(rows(more, [&row]).is_err());
    }
}
