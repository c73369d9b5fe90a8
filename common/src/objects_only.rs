//! A `serde_json::Value` deserializer under which a struct is only ever a
//! JSON object. serde's derived structs also take a list of their fields
//! in order, so `"rootVolume": []` or `"snat": []` became a struct of
//! defaults (an empty install path, "no SNAT") instead of the 400 the
//! wrong type deserves. Everything else behaves as `Value` does: scalars
//! are handed to it unchanged, lists and objects are walked so the rule
//! holds at every depth.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

pub struct ObjectsOnly(pub Value);

type Error = serde_json::Error;

macro_rules! scalars_as_value {
    ($($method:ident),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            de::Deserializer::$method(self.0, v)
        })*
    };
}

impl<'de> de::Deserializer<'de> for ObjectsOnly {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(a) => v.visit_seq(Seq(a.into_iter())),
            Value::Object(m) => v.visit_map(Obj::new(m)),
            other => de::Deserializer::deserialize_any(other, v),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(m) => v.visit_map(Obj::new(m)),
            Value::Array(_) => Err(de::Error::invalid_type(de::Unexpected::Seq, &"an object")),
            other => de::Deserializer::deserialize_any(other, v),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => v.visit_none(),
            other => v.visit_some(ObjectsOnly(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_any(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_any(v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_any(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_any(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_enum(self.0, name, variants, v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }

    scalars_as_value! {
        deserialize_bool, deserialize_i8, deserialize_i16, deserialize_i32, deserialize_i64,
        deserialize_i128, deserialize_u8, deserialize_u16, deserialize_u32, deserialize_u64,
        deserialize_u128, deserialize_f32, deserialize_f64, deserialize_char, deserialize_str,
        deserialize_string, deserialize_bytes, deserialize_byte_buf, deserialize_unit,
        deserialize_identifier,
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_unit_struct(self.0, name, v)
    }
}

struct Seq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Seq {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(ObjectsOnly(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Obj {
    entries: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl Obj {
    fn new(m: Map<String, Value>) -> Obj {
        Obj {
            entries: m.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Obj {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let v = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("a value without its key"))?;
        seed.deserialize(ObjectsOnly(v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Inner {
        a: u16,
        b: Option<String>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Outer {
        inner: Option<Inner>,
        list: Vec<Inner>,
        map: std::collections::BTreeMap<String, Inner>,
        any: Value,
    }

    fn decode(v: Value) -> Result<Outer, String> {
        serde_path_to_error::deserialize(ObjectsOnly(v)).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })
    }

    #[test]
    fn a_list_is_no_struct_at_any_depth() {
        // What plain serde_json::Value accepts:
        assert!(serde_json::from_value::<Outer>(json!({"inner": []})).is_ok());
        for (body, at) in [
            (json!({"inner": []}), "inner"),
            (json!({"inner": [7, "x"]}), "inner"),
            (json!({"list": [{"a": 1}, []]}), "list[1]"),
            (json!({"map": {"k": []}}), "map.k"),
        ] {
            let e = decode(body).unwrap_err();
            assert!(e.starts_with(at) && e.contains("expected an object"), "{e}");
        }
    }

    #[test]
    fn everything_else_decodes_as_with_value() {
        let body = json!({"inner": {"a": 7, "b": null}, "list": [{"a": 1}, {"b": "x"}],
                          "map": {"k": {"a": 2}}, "any": [1, {"z": []}]});
        assert_eq!(
            decode(body.clone()).unwrap(),
            serde_json::from_value::<Outer>(body).unwrap()
        );
        let e = decode(json!({"inner": {"a": 70000}})).unwrap_err();
        assert!(e.starts_with("inner.a"), "{e}");
    }
}
