//! Writing JSON documents into a `String`, for the proxy's `/config.json`.
//!
//! The proxy serves one small JSON document and parses none, so it writes
//! it with [`ToJson`] and [`json_object!`](crate::json_object) instead of
//! serde_json: serde's generated serializers and serde_json's float
//! formatter cost about 50 KiB of code in every sidecar, and fault-around
//! keeps about half of a binary's code resident (bench/README.md, "Tap").
//! The control plane and the CLI, which parse JSON, use serde_json.
//!
//! What this will not do: parse, pretty-print, or write non-finite floats
//! (`NaN` and infinities become `null`, as JSON has no such numbers).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A value that writes itself as JSON.
pub trait ToJson {
    /// Appends this value's JSON text to `out`.
    fn write_json(&self, out: &mut String);
}

/// Appends `s` as a JSON string literal, escaped as RFC 8259 requires.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a JSON object: `{"key":value,...}`, keys in the order given.
///
/// ```
/// let mut out = String::new();
/// wisp_common::json_object!(&mut out; "name" => "web", "ready" => &true);
/// assert_eq!(out, r#"{"name":"web","ready":true}"#);
/// ```
#[macro_export]
macro_rules! json_object {
    ($out:expr; $($key:literal => $value:expr),* $(,)?) => {{
        let out: &mut String = $out;
        out.push('{');
        let mut _first = true;
        $(
            if !_first {
                out.push(',');
            }
            _first = false;
            $crate::json::write_str(out, $key);
            out.push(':');
            $crate::json::ToJson::write_json($value, out);
        )*
        out.push('}');
    }};
}

impl ToJson for str {
    fn write_json(&self, out: &mut String) {
        write_str(out, self);
    }
}

impl ToJson for String {
    fn write_json(&self, out: &mut String) {
        write_str(out, self);
    }
}

impl ToJson for bool {
    fn write_json(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn write_json(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integers!(u16, u32, u64, u128, usize, i64);

impl ToJson for f64 {
    fn write_json(&self, out: &mut String) {
        if self.is_finite() {
            // `Display` writes the shortest decimal that reads back as the
            // same value, never in exponent form: a valid JSON number.
            let _ = write!(out, "{self}");
        } else {
            out.push_str("null");
        }
    }
}

impl<T: ToJson + ?Sized> ToJson for &T {
    fn write_json(&self, out: &mut String) {
        (**self).write_json(out);
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn write_json(&self, out: &mut String) {
        match self {
            Some(v) => v.write_json(out),
            None => out.push_str("null"),
        }
    }
}

impl<T: ToJson> ToJson for [T] {
    fn write_json(&self, out: &mut String) {
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            v.write_json(out);
        }
        out.push(']');
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn write_json(&self, out: &mut String) {
        self.as_slice().write_json(out);
    }
}

impl<A: ToJson, B: ToJson> ToJson for (A, B) {
    /// A pair is a two-element array.
    fn write_json(&self, out: &mut String) {
        out.push('[');
        self.0.write_json(out);
        out.push(',');
        self.1.write_json(out);
        out.push(']');
    }
}

impl<K: AsRef<str>, V: ToJson> ToJson for BTreeMap<K, V> {
    fn write_json(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(out, k.as_ref());
            out.push(':');
            v.write_json(out);
        }
        out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: ToJson + ?Sized>(v: &T) -> String {
        let mut out = String::new();
        v.write_json(&mut out);
        out
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json("a\"b\\c\n\t\u{1}é"), r#""a\"b\\c\n\t\u0001é""#);
    }

    #[test]
    fn numbers_options_and_collections() {
        assert_eq!(json(&0.2f64), "0.2");
        assert_eq!(json(&1e21f64), "1000000000000000000000");
        assert_eq!(json(&f64::NAN), "null");
        assert_eq!(json(&Some(3u32)), "3");
        assert_eq!(json(&None::<u32>), "null");
        assert_eq!(json(&vec![("a".to_string(), 1u32)]), r#"[["a",1]]"#);
        let map: BTreeMap<String, String> = [("k".into(), "v".into())].into();
        assert_eq!(json(&map), r#"{"k":"v"}"#);
    }

    #[test]
    fn objects_keep_their_key_order() {
        let mut out = String::new();
        crate::json_object!(&mut out; "z" => &1u32, "a" => &vec![true, false], "e" => &Vec::<u32>::new());
        assert_eq!(out, r#"{"z":1,"a":[true,false],"e":[]}"#);
    }
}
