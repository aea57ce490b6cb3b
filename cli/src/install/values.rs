//! Chart values as Helm computes them: the chart's `values.yaml`, then
//! each `-f` file, then each `--set`/`--set-file`, merged key by key
//! (a `null` removes a key), with Helm's `--set` syntax and typing.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

/// Why the values could not be computed: the user's input was unusable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ValuesError {
    /// A values file could not be read.
    #[error("cannot read values file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A values file is not YAML, or not a mapping.
    #[error("values file {} is not a YAML mapping", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, if the YAML itself is bad.
        #[source]
        source: Option<serde_yaml_ng::Error>,
    },
    /// A `--set` expression is malformed.
    #[error("bad --set {expr:?}: {reason}")]
    Set {
        /// The expression.
        expr: String,
        /// What is wrong.
        reason: String,
    },
}

/// Parses a values document (empty means no values).
pub(crate) fn parse(text: &str, path: &Path) -> Result<Value, ValuesError> {
    let value: Value = serde_yaml_ng::from_str(text).map_err(|source| ValuesError::Parse {
        path: path.to_path_buf(),
        source: Some(source),
    })?;
    match value {
        Value::Null => Ok(Value::Mapping(Mapping::new())),
        Value::Mapping(_) => Ok(value),
        _ => Err(ValuesError::Parse {
            path: path.to_path_buf(),
            source: None,
        }),
    }
}

/// Reads and parses a values file.
pub(crate) fn read(path: &Path) -> Result<Value, ValuesError> {
    let text = std::fs::read_to_string(path).map_err(|source| ValuesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Merges `over` into `base`: mappings key by key, anything else replaced;
/// a `null` in `over` removes the key.
pub(crate) fn merge(base: &mut Value, over: Value) {
    merge_with(base, over, Sequences::Replace);
}

/// How [`merge_with`] treats a sequence over a sequence.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sequences {
    /// Replaced whole (values files, as Helm).
    Replace,
    /// Element by element, `null` holes left alone (`--set a[1]=x`).
    ByIndex,
}

fn merge_with(base: &mut Value, over: Value, sequences: Sequences) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                if value.is_null() {
                    base.remove(&key);
                    continue;
                }
                match base.get_mut(&key) {
                    Some(existing)
                        if (existing.is_mapping() && value.is_mapping())
                            || (sequences == Sequences::ByIndex
                                && existing.is_sequence()
                                && value.is_sequence()) =>
                    {
                        merge_with(existing, value, sequences)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Sequence(base), Value::Sequence(over)) if sequences == Sequences::ByIndex => {
            for (i, value) in over.into_iter().enumerate() {
                if value.is_null() {
                    continue;
                }
                if i >= base.len() {
                    base.resize(i + 1, Value::Null);
                }
                merge_with(&mut base[i], value, sequences);
            }
        }
        (base, over) => *base = over,
    }
}

/// Splits `s` at unescaped `sep` outside `{...}`, keeping escapes.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let current = parts.last_mut().map(|p| p as &mut String);
        let Some(current) = current else { break };
        match c {
            '\\' => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            c if c == sep && depth == 0 => parts.push(String::new()),
            c => current.push(c),
        }
    }
    parts
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Helm's typing of a `--set` value: `true`/`false`, `null`, integers
/// (without a leading zero), `{a,b}` lists; anything else a string.
fn typed(raw: &str) -> Value {
    if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        if inner.is_empty() {
            return Value::Sequence(Vec::new());
        }
        return Value::Sequence(
            split_unescaped(inner, ',')
                .iter()
                .map(|item| typed(item))
                .collect(),
        );
    }
    let text = unescape(raw);
    match text.as_str() {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "null" => return Value::Null,
        "0" => return Value::Number(0.into()),
        _ => {}
    }
    let digits = text.strip_prefix('-').unwrap_or(&text);
    if !digits.starts_with('0') && !digits.is_empty() {
        if let Ok(n) = text.parse::<i64>() {
            return Value::Number(n.into());
        }
    }
    Value::String(text)
}

/// One path segment: a key, optionally indexed (`a[0]`).
fn segment(expr: &str, part: &str) -> Result<(String, Option<usize>), ValuesError> {
    let bad = |reason: &str| ValuesError::Set {
        expr: expr.to_string(),
        reason: reason.to_string(),
    };
    let key = unescape(part);
    if let Some(open) = key.find('[') {
        let index = key[open + 1..]
            .strip_suffix(']')
            .and_then(|i| i.parse::<usize>().ok())
            .ok_or_else(|| bad("an index must be [N]"))?;
        if index > 65_535 {
            return Err(bad("index too large"));
        }
        Ok((key[..open].to_string(), Some(index)))
    } else if key.is_empty() {
        Err(bad("empty key"))
    } else {
        Ok((key, None))
    }
}

/// Applies one `--set` argument (`a.b=1,c[0]=x`) to `values`; with
/// `as_file`, each value names a file whose contents become the value.
pub(crate) fn set(values: &mut Value, arg: &str, as_file: bool) -> Result<(), ValuesError> {
    for assignment in split_unescaped(arg, ',') {
        if assignment.is_empty() {
            continue;
        }
        let Some(eq) = assignment.find('=') else {
            return Err(ValuesError::Set {
                expr: arg.to_string(),
                reason: "expected key=value".into(),
            });
        };
        let (path, raw) = (&assignment[..eq], &assignment[eq + 1..]);
        let value = if as_file {
            let file = PathBuf::from(unescape(raw));
            Value::String(
                std::fs::read_to_string(&file)
                    .map_err(|source| ValuesError::Read { path: file, source })?,
            )
        } else {
            typed(raw)
        };
        let segments = split_unescaped(path, '.')
            .iter()
            .map(|p| segment(arg, p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut over = value;
        for (key, index) in segments.into_iter().rev() {
            if let Some(index) = index {
                let mut seq = vec![Value::Null; index + 1];
                seq[index] = over;
                over = Value::Sequence(seq);
            }
            let mut map = Mapping::new();
            map.insert(Value::String(key), over);
            over = Value::Mapping(map);
        }
        merge_with(values, over, Sequences::ByIndex);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn files_merge_deeply_and_null_removes() {
        let mut v = yaml("a: {b: 1, c: 2}\nd: [1, 2]\ne: x");
        merge(&mut v, yaml("a: {c: 3}\nd: [9]\ne: null"));
        assert_eq!(v, yaml("a: {b: 1, c: 3}\nd: [9]"));
    }

    #[test]
    fn set_types_values_like_helm() {
        let mut v = yaml("a: {b: 1}\nl: [x, y]");
        set(
            &mut v,
            r"a.c=true,a.d=007,a.e=-12,n=null,s={p,q},k\.dot=v\,w,l[1]=z",
            false,
        )
        .unwrap();
        assert_eq!(
            v,
            yaml("a: {b: 1, c: true, d: '007', e: -12}\nl: [x, z]\ns: [p, q]\nk.dot: 'v,w'")
        );
        assert!(set(&mut v, "novalue", false).is_err());
        assert!(set(&mut v, "a..b=1", false).is_err());
    }
}
