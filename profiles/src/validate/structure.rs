//! Strict structural check of a YAML value against a raw schema from
//! [`crate::schema`]: types, required fields and unknown fields, every
//! problem reported with its path.
//!
//! It also returns a *repaired* copy of the value (unknown fields removed,
//! missing or mistyped fields replaced by an empty value) so the object can
//! still be read and its semantic rules checked; the paths it repaired are
//! returned so problems found under them can be discarded as consequences.

use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value;

use super::problem::{field, index, Problems};

/// Result of a structural check.
pub(crate) struct Checked {
    /// The value with unknown fields removed and broken fields emptied.
    pub repaired: Value,
    /// Paths whose value was invented during repair.
    pub repaired_paths: Vec<String>,
}

pub(crate) fn check(schema: &Json, value: &Value, out: &mut Problems) -> Checked {
    let defs = schema
        .get("$defs")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    let mut walker = Walker {
        defs: &defs,
        repaired_paths: Vec::new(),
    };
    let repaired = walker.walk(schema, value, "", out);
    Checked {
        repaired,
        repaired_paths: walker.repaired_paths,
    }
}

struct Walker<'a> {
    defs: &'a Map<String, Json>,
    repaired_paths: Vec<String>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

fn matches_type(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_mapping(),
        "array" => v.is_sequence(),
        "string" => v.is_string(),
        "boolean" => v.is_bool(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn article(t: &str) -> String {
    match t {
        "object" => "a map".into(),
        "array" => "a list".into(),
        "integer" => "an integer".into(),
        other => format!("a {other}"),
    }
}

/// Follows `$ref`s into `defs`.
fn resolve<'s>(defs: &'s Map<String, Json>, schema: &'s Json) -> &'s Json {
    let mut s = schema;
    for _ in 0..16 {
        match s
            .get("$ref")
            .and_then(Json::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .and_then(|name| defs.get(name))
        {
            Some(next) => s = next,
            None => break,
        }
    }
    s
}

impl Walker<'_> {
    /// An empty value of the schema's type, used to repair.
    fn empty(&mut self, schema: &Json, path: &str) -> Value {
        self.repaired_paths.push(path.to_string());
        let schema = resolve(self.defs, schema);
        if schema.get("x-kubernetes-int-or-string").is_some() {
            return Value::String("0".into());
        }
        let t = match schema.get("type") {
            Some(Json::String(t)) => t.as_str(),
            Some(Json::Array(ts)) => ts
                .iter()
                .filter_map(Json::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null"),
            _ => "null",
        };
        let value = match t {
            "object" => Value::Mapping(Default::default()),
            "array" => Value::Sequence(Vec::new()),
            "string" => Value::String(String::new()),
            "integer" | "number" => Value::Number(0.into()),
            "boolean" => Value::Bool(false),
            _ => Value::Null,
        };
        // Fill its own required fields so it deserializes; problems found
        // in the invented value are dropped.
        let mut scratch = Problems::default();
        self.walk(schema, &value, path, &mut scratch)
    }

    fn walk(&mut self, schema: &Json, value: &Value, path: &str, out: &mut Problems) -> Value {
        let schema = resolve(self.defs, schema);
        if schema.get("x-kubernetes-int-or-string").is_some() {
            if value.is_number() || value.is_string() {
                return value.clone();
            }
            out.push(
                path,
                format!(
                    "expected an integer or a string, found {}",
                    type_name(value)
                ),
            );
            return self.empty(schema, path);
        }
        if let Some(branches) = schema.get("anyOf").and_then(Json::as_array) {
            if value.is_null()
                && branches
                    .iter()
                    .any(|b| b.get("type").and_then(Json::as_str) == Some("null"))
            {
                return Value::Null;
            }
            let non_null: Vec<&Json> = branches
                .iter()
                .filter(|b| b.get("type").and_then(Json::as_str) != Some("null"))
                .collect();
            if let Some(first) = non_null.first() {
                return self.walk(first, value, path, out);
            }
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Json::String(t)) => vec![t.as_str()],
            Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| matches_type(t, value)) {
            let expected: Vec<String> = types
                .iter()
                .filter(|t| **t != "null")
                .map(|t| article(t))
                .collect();
            out.push(
                path,
                format!(
                    "expected {}, found {}",
                    expected.join(" or "),
                    type_name(value)
                ),
            );
            return self.empty(schema, path);
        }
        if let Some(min) = schema.get("minimum").and_then(Json::as_f64) {
            if value.as_f64().is_some_and(|v| v < min) {
                out.push(path, format!("must be at least {min}"));
                return self.empty(schema, path);
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Json::as_f64) {
            if value.as_f64().is_some_and(|v| v > max) {
                out.push(path, format!("must be at most {max}"));
                return self.empty(schema, path);
            }
        }
        match value {
            Value::Mapping(map) => self.walk_object(schema, map, path, out),
            Value::Sequence(items) => {
                let Some(item_schema) = schema.get("items") else {
                    return value.clone();
                };
                Value::Sequence(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.walk(item_schema, item, &index(path, i), out))
                        .collect(),
                )
            }
            other => other.clone(),
        }
    }

    fn walk_object(
        &mut self,
        schema: &Json,
        map: &serde_yaml_ng::Mapping,
        path: &str,
        out: &mut Problems,
    ) -> Value {
        let props = schema.get("properties").and_then(Json::as_object);
        let strict = schema.get("additionalProperties") == Some(&Json::Bool(false));
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Json::as_array)
            .map(|r| r.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let mut repaired = serde_yaml_ng::Mapping::new();
        for (key, v) in map {
            let Some(name) = key.as_str() else {
                out.push(
                    path,
                    format!("field names must be strings, found {}", type_name(key)),
                );
                continue;
            };
            if v.is_null() && required.contains(&name) {
                continue; // reported as missing below
            }
            let child = field(path, name);
            match props.and_then(|p| p.get(name)) {
                Some(prop) => {
                    let checked = self.walk(prop, v, &child, out);
                    repaired.insert(key.clone(), checked);
                }
                None if strict => out.push(child, "unknown field"),
                None => {
                    repaired.insert(key.clone(), v.clone());
                }
            }
        }
        for name in required {
            let present = map.get(name).is_some_and(|v| !v.is_null());
            if !present {
                let child = field(path, name);
                out.push(child.clone(), "missing required field");
                let prop = props
                    .and_then(|p| p.get(name))
                    .cloned()
                    .unwrap_or(Json::Null);
                let filled = self.empty(&prop, &child);
                repaired.insert(Value::String(name.to_string()), filled);
            }
        }
        Value::Mapping(repaired)
    }
}
