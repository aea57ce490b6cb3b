//! The Helm and Sprig template functions the chart uses, over gtmpl
//! values, with Go's semantics where output depends on them (`%q`
//! quoting, `toYaml` key order and trailing newline, `toJson` HTML
//! escaping, Sprig's notion of "empty").
//!
//! gtmpl functions are plain `fn` pointers without access to the template
//! set, so `include` finds the chart's named templates in a thread-local
//! set by [`with_helpers`] for the duration of one render.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use base64::Engine as _;
use gtmpl::{Context, Func, Template};
use gtmpl_value::{FuncError, Number, Value};

use super::certs;

/// How deep `include` may nest before it is an error (a recursive
/// template), rather than a stack overflow.
const MAX_INCLUDE_DEPTH: u32 = 64;

thread_local! {
    /// (name, text) of the files whose `define`s `include` can call.
    static HELPERS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` with `helpers` as the named templates `include` can call.
pub(crate) fn with_helpers<T>(helpers: Vec<(String, String)>, f: impl FnOnce() -> T) -> T {
    let previous = HELPERS.with(|h| h.replace(helpers));
    let out = f();
    HELPERS.with(|h| h.replace(previous));
    out
}

/// The functions, by name.
pub(crate) const FUNCS: &[(&str, Func)] = &[
    ("include", include),
    ("toYaml", to_yaml),
    ("toJson", to_json),
    ("nindent", nindent),
    ("indent", indent),
    ("quote", quote),
    ("default", default),
    ("required", required),
    ("fail", fail),
    ("b64enc", b64enc),
    ("trim", trim),
    ("list", list),
    ("dict", dict),
    ("ternary", ternary),
    ("int", int),
    ("empty", empty_fn),
    ("genCA", gen_ca),
    ("genSignedCert", gen_signed_cert),
];

/// A template named `name` knowing every function and the helpers.
pub(crate) fn new_template(name: &str) -> Template {
    let mut template = Template::with_name(name);
    template.add_funcs(FUNCS);
    template
}

fn generic(message: impl Into<String>) -> FuncError {
    FuncError::Generic(message.into())
}

fn exactly<'a, const N: usize>(name: &str, args: &'a [Value]) -> Result<&'a [Value; N], FuncError> {
    args.try_into()
        .map_err(|_| FuncError::ExactlyXArgs(name.into(), N))
}

/// Sprig's `empty`: nil, false, 0, "" and empty collections.
pub(crate) fn is_empty(value: &Value) -> bool {
    match value {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        Value::Number(n) => n.as_u64() == Some(0) || n.as_f64() == Some(0.0),
        Value::Function(_) => false,
    }
}

/// Go's `%v` of a value as Sprig's `strval` prints it.
fn strval(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::NoValue | Value::Nil => String::new(),
        other => other.to_string(),
    }
}

/// `include NAME DATA`: renders a named template to a string.
fn include(args: &[Value]) -> Result<Value, FuncError> {
    let [name, data] = exactly::<2>("include", args)?;
    let Value::String(name) = name else {
        return Err(generic("include: the template name must be a string"));
    };
    if name.contains(['"', '\\', '\n']) {
        return Err(generic(format!("include: bad template name {name:?}")));
    }
    let depth = DEPTH.with(|d| d.get());
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(generic(format!(
            "include {name:?}: nested more than {MAX_INCLUDE_DEPTH} deep (a recursive template?)"
        )));
    }
    let helpers = HELPERS.with(|h| h.borrow().clone());
    let mut template = new_template("include");
    for (file, text) in helpers {
        template
            .add_template(file, text)
            .map_err(|e| generic(format!("include {name:?}: {e}")))?;
    }
    template
        .parse(format!("{{{{ template \"{name}\" . }}}}"))
        .map_err(|e| generic(format!("include {name:?}: {e}")))?;
    DEPTH.with(|d| d.set(depth + 1));
    let out = template.render(&Context::from(data.clone()));
    DEPTH.with(|d| d.set(depth));
    out.map(Value::String)
        .map_err(|e| generic(format!("include {name:?}: {e}")))
}

/// A gtmpl value as YAML (maps sorted by key, as Go's encoders do).
pub(crate) fn to_yaml_value(value: &Value) -> Result<serde_yaml_ng::Value, FuncError> {
    Ok(match value {
        Value::NoValue | Value::Nil => serde_yaml_ng::Value::Null,
        Value::Bool(b) => serde_yaml_ng::Value::Bool(*b),
        Value::String(s) => serde_yaml_ng::Value::String(s.clone()),
        Value::Number(n) => number_to_yaml(n),
        Value::Array(a) => {
            serde_yaml_ng::Value::Sequence(a.iter().map(to_yaml_value).collect::<Result<_, _>>()?)
        }
        Value::Map(m) | Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            let mut mapping = serde_yaml_ng::Mapping::new();
            for (k, v) in sorted {
                mapping.insert(serde_yaml_ng::Value::String(k.clone()), to_yaml_value(v)?);
            }
            serde_yaml_ng::Value::Mapping(mapping)
        }
        Value::Function(_) => return Err(generic("cannot serialize a function")),
    })
}

fn number_to_yaml(n: &Number) -> serde_yaml_ng::Value {
    if let Some(i) = n.as_i64() {
        serde_yaml_ng::Value::Number(i.into())
    } else if let Some(u) = n.as_u64() {
        serde_yaml_ng::Value::Number(u.into())
    } else {
        serde_yaml_ng::Value::Number(n.as_f64().unwrap_or(f64::NAN).into())
    }
}

/// A YAML value as a gtmpl value (values files, `--set`).
pub(crate) fn from_yaml(value: &serde_yaml_ng::Value) -> Value {
    match value {
        serde_yaml_ng::Value::Null => Value::Nil,
        serde_yaml_ng::Value::Bool(b) => Value::Bool(*b),
        serde_yaml_ng::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_yaml_ng::Value::String(s) => Value::String(s.clone()),
        serde_yaml_ng::Value::Sequence(s) => Value::Array(s.iter().map(from_yaml).collect()),
        serde_yaml_ng::Value::Mapping(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (yaml_key(k), from_yaml(v)))
                .collect::<HashMap<_, _>>(),
        ),
        serde_yaml_ng::Value::Tagged(t) => from_yaml(&t.value),
    }
}

/// A YAML mapping key as the string Go's YAML-to-JSON conversion makes it.
pub(crate) fn yaml_key(key: &serde_yaml_ng::Value) -> String {
    match key {
        serde_yaml_ng::Value::String(s) => s.clone(),
        serde_yaml_ng::Value::Bool(b) => b.to_string(),
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        serde_yaml_ng::Value::Null => "null".into(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}

/// `toYaml V`: YAML without the trailing newline (Helm trims it).
fn to_yaml(args: &[Value]) -> Result<Value, FuncError> {
    let [value] = exactly::<1>("toYaml", args)?;
    let text = serde_yaml_ng::to_string(&to_yaml_value(value)?)
        .map_err(|e| generic(format!("toYaml: {e}")))?;
    Ok(Value::String(text.trim_end_matches('\n').to_string()))
}

/// `toJson V`: compact JSON, keys sorted, `<`, `>` and `&` escaped as
/// Go's encoding/json does.
fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    let [value] = exactly::<1>("toJson", args)?;
    let json =
        serde_json::to_value(to_yaml_value(value)?).map_err(|e| generic(format!("toJson: {e}")))?;
    let text = serde_json::to_string(&json).map_err(|e| generic(format!("toJson: {e}")))?;
    Ok(Value::String(
        text.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029"),
    ))
}

fn count(name: &str, value: &Value) -> Result<usize, FuncError> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| generic(format!("{name}: {n} is not a width"))),
        other => Err(generic(format!("{name}: {other} is not a number"))),
    }
}

fn indent_text(width: usize, text: &str) -> String {
    let pad = " ".repeat(width);
    format!("{pad}{}", text.replace('\n', &format!("\n{pad}")))
}

/// `indent N S`: every line of S prefixed with N spaces.
fn indent(args: &[Value]) -> Result<Value, FuncError> {
    let [n, s] = exactly::<2>("indent", args)?;
    Ok(Value::String(indent_text(count("indent", n)?, &strval(s))))
}

/// `nindent N S`: a newline, then `indent N S`.
fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    let [n, s] = exactly::<2>("nindent", args)?;
    Ok(Value::String(format!(
        "\n{}",
        indent_text(count("nindent", n)?, &strval(s))
    )))
}

/// Go's `%q` of a string: double-quoted, with Go's escapes.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `quote S...`: each non-nil argument `%q`-quoted, joined by spaces.
fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|v| !matches!(v, Value::Nil | Value::NoValue))
        .map(|v| go_quote(&strval(v)))
        .collect();
    Ok(Value::String(quoted.join(" ")))
}

/// `default D V`: V unless it is empty, else D.
fn default(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [d] => Ok(d.clone()),
        [d, given] => Ok(if is_empty(given) {
            d.clone()
        } else {
            given.clone()
        }),
        _ => Err(FuncError::AtLeastXArgs("default".into(), 1)),
    }
}

/// `required MSG V`: V, or an error saying MSG when V is nil or "".
fn required(args: &[Value]) -> Result<Value, FuncError> {
    let [message, value] = exactly::<2>("required", args)?;
    match value {
        Value::Nil | Value::NoValue => Err(generic(strval(message))),
        Value::String(s) if s.is_empty() => Err(generic(strval(message))),
        other => Ok(other.clone()),
    }
}

/// `fail MSG`: an error saying MSG.
fn fail(args: &[Value]) -> Result<Value, FuncError> {
    let [message] = exactly::<1>("fail", args)?;
    Err(generic(strval(message)))
}

/// `b64enc S`: standard base64 with padding.
fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    let [s] = exactly::<1>("b64enc", args)?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(strval(s)),
    ))
}

/// `trim S`: S without leading and trailing white space.
fn trim(args: &[Value]) -> Result<Value, FuncError> {
    let [s] = exactly::<1>("trim", args)?;
    Ok(Value::String(strval(s).trim().to_string()))
}

/// `list A B ...`.
fn list(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(args.to_vec()))
}

/// `dict K1 V1 K2 V2 ...` (a missing last value is "").
fn dict(args: &[Value]) -> Result<Value, FuncError> {
    let mut map = HashMap::new();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or(Value::String(String::new()));
        map.insert(strval(&pair[0]), value);
    }
    Ok(Value::Map(map))
}

/// `ternary T F COND`.
fn ternary(args: &[Value]) -> Result<Value, FuncError> {
    let [t, f, cond] = exactly::<3>("ternary", args)?;
    match cond {
        Value::Bool(true) => Ok(t.clone()),
        Value::Bool(false) => Ok(f.clone()),
        other => Err(generic(format!("ternary: condition {other} is not a bool"))),
    }
}

/// `int V`: V as an integer (strings parsed, floats truncated, else 0).
fn int(args: &[Value]) -> Result<Value, FuncError> {
    let [v] = exactly::<1>("int", args)?;
    let n = match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f.trunc() as i64))
            .unwrap_or(0),
        Value::String(s) => s.trim().parse::<i64>().unwrap_or(0),
        Value::Bool(b) => i64::from(*b),
        _ => 0,
    };
    Ok(Value::from(n))
}

/// `empty V`.
fn empty_fn(args: &[Value]) -> Result<Value, FuncError> {
    let [v] = exactly::<1>("empty", args)?;
    Ok(Value::Bool(is_empty(v)))
}

fn days(name: &str, value: &Value) -> Result<u32, FuncError> {
    count(name, value).and_then(|d| {
        u32::try_from(d)
            .ok()
            .filter(|d| (1..=36_500).contains(d))
            .ok_or_else(|| generic(format!("{name}: {d} days is out of range")))
    })
}

fn cert_value(pem: certs::CertPem) -> Value {
    Value::Map(HashMap::from([
        ("Cert".to_string(), Value::String(pem.cert)),
        ("Key".to_string(), Value::String(pem.key)),
    ]))
}

/// `genCA CN DAYS`: a new CA, as `{Cert, Key}` (PEM).
fn gen_ca(args: &[Value]) -> Result<Value, FuncError> {
    let [cn, d] = exactly::<2>("genCA", args)?;
    let pem = certs::gen_ca(&strval(cn), days("genCA", d)?)
        .map_err(|e| generic(format!("genCA: {}", wisp_common::error::chain(&e))))?;
    Ok(cert_value(pem))
}

fn strings(name: &str, value: &Value) -> Result<Vec<String>, FuncError> {
    match value {
        Value::Array(a) => Ok(a.iter().map(strval).collect()),
        Value::Nil | Value::NoValue => Ok(Vec::new()),
        other => Err(generic(format!("{name}: {other} is not a list"))),
    }
}

/// `genSignedCert CN IPS DNSNAMES DAYS CA`: a certificate signed by CA.
fn gen_signed_cert(args: &[Value]) -> Result<Value, FuncError> {
    let [cn, ips, dns, d, ca] = exactly::<5>("genSignedCert", args)?;
    let ips = strings("genSignedCert", ips)?
        .iter()
        .map(|ip| {
            ip.parse::<IpAddr>()
                .map_err(|_| generic(format!("genSignedCert: {ip:?} is not an IP address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dns = strings("genSignedCert", dns)?;
    let field = |name: &str| match ca {
        Value::Map(m) | Value::Object(m) => m.get(name).map(strval),
        _ => None,
    };
    let (Some(cert), Some(key)) = (field("Cert"), field("Key")) else {
        return Err(generic("genSignedCert: the CA must be the result of genCA"));
    };
    let ca = certs::CertPem { cert, key };
    let pem = certs::gen_signed(&strval(cn), &ips, &dns, days("genSignedCert", d)?, &ca)
        .map_err(|e| generic(format!("genSignedCert: {}", wisp_common::error::chain(&e))))?;
    Ok(cert_value(pem))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn render(src: &str, data: Value) -> String {
        let mut t = new_template("t");
        t.parse(src).unwrap();
        t.render(&Context::from(data)).unwrap()
    }

    #[test]
    fn quoting_is_go_percent_q() {
        assert_eq!(go_quote("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
        assert_eq!(go_quote("é\u{1}"), "\"é\\x01\"");
        assert_eq!(render(r#"{{ quote "x" 3 }}"#, Value::Nil), r#""x" "3""#);
    }

    #[test]
    fn yaml_and_json_sort_keys() {
        let v = from_yaml(&serde_yaml_ng::from_str("{b: 1, a: [x, '<y>'], c: {}}").unwrap());
        assert_eq!(
            render("{{ toYaml . }}", v.clone()),
            "a:\n- x\n- <y>\nb: 1\nc: {}"
        );
        assert_eq!(
            render("{{ toJson . }}", v),
            r#"{"a":["x","\u003cy\u003e"],"b":1,"c":{}}"#
        );
    }

    #[test]
    fn indentation_defaults_and_ternary() {
        assert_eq!(
            render(r#"x:{{ "a\nb" | nindent 2 }}"#, Value::Nil),
            "x:\n  a\n  b"
        );
        assert_eq!(render(r#"{{ "" | default "d" }}"#, Value::Nil), "d");
        assert_eq!(render(r#"{{ 0 | default 5 }}"#, Value::Nil), "5");
        assert_eq!(render(r#"{{ ternary "y" "n" (eq 1 1) }}"#, Value::Nil), "y");
        assert_eq!(render(r#"{{ " p " | trim | b64enc }}"#, Value::Nil), "cA==");
        assert_eq!(
            render(r#"{{ index (dict "k" (list 1 2)).k 1 }}"#, Value::Nil),
            "2"
        );
    }

    #[test]
    fn required_fails_with_its_message() {
        let mut t = new_template("t");
        t.parse(r#"{{ required "need x" .x }}"#).unwrap();
        let err = t
            .render(&Context::from(Value::Map(HashMap::new())))
            .unwrap_err();
        assert!(err.to_string().contains("need x"), "{err}");
    }

    #[test]
    fn include_renders_helpers_and_stops_recursion() {
        let helpers = vec![(
            "h".to_string(),
            r#"{{ define "a" }}<{{ . }}>{{ end }}{{ define "loop" }}{{ include "loop" . }}{{ end }}"#
                .to_string(),
        )];
        with_helpers(helpers, || {
            assert_eq!(
                render(r#"{{ include "a" "x" | quote }}"#, Value::Nil),
                r#""<x>""#
            );
            let mut t = new_template("t");
            t.parse(r#"{{ include "loop" 1 }}"#).unwrap();
            let err = t.render(&Context::from(Value::Nil)).unwrap_err();
            assert!(err.to_string().contains("nested"), "{err}");
        });
    }
}
