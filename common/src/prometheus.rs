//! Reading samples out of the Prometheus text exposition format (what a
//! proxy's `/metrics` answers): `name{key="value",...} value [timestamp]`.
//!
//! This is the one parser every consumer uses (the end-to-end tests, the
//! demo and the bench). It is written here rather than taken from a crate:
//! `prometheus-parse` pulls in `chrono`, `regex`, `itertools` and
//! `lazy_static` and builds a whole document model, while the consumers only
//! need to iterate over samples; this parser borrows from the text and
//! allocates only for label vectors and escaped label values.
//!
//! Comment (`# HELP`, `# TYPE`) and blank lines are skipped; so are lines
//! that are not valid samples when iterating with [`samples`] (use
//! [`parse_line`] to see why a line was refused).

use std::borrow::Cow;

/// Why a line is not a sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line does not start with a metric name.
    #[error("no metric name")]
    Name,
    /// The label set is not `{key="value",...}`.
    #[error("malformed labels")]
    Labels,
    /// No value after the name and labels.
    #[error("no value")]
    MissingValue,
    /// The value is not a number (`NaN`, `+Inf`, `-Inf` are numbers).
    #[error("invalid value {0:?}")]
    Value(String),
    /// The timestamp is not an integer number of milliseconds.
    #[error("invalid timestamp {0:?}")]
    Timestamp(String),
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The metric name, e.g. `request_total`.
    pub name: &'a str,
    /// The labels in the order written, values unescaped.
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    /// The value.
    pub value: f64,
    /// The optional timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

impl Sample<'_> {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Whether the sample has every `key="value"` pair of `want`.
    pub fn has_labels(&self, want: &[(&str, &str)]) -> bool {
        want.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// Every sample of `text`, in order; comments, blank lines and malformed
/// lines are skipped.
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines()
        .filter_map(|line| parse_line(line).ok().flatten())
}

/// Every sample of metric `name` in `text` (an exact name: `request_total`
/// does not match `request_total_bucket`).
pub fn series<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = Sample<'a>> + 'a {
    samples(text).filter(move |s| s.name == name)
}

/// The sum of metric `name` over the samples that have every
/// `key="value"` pair of `labels` (all samples of `name` if it is empty).
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sum_by(text, name, |s| s.has_labels(labels))
}

/// The sum of metric `name` over the samples that `keep` selects.
pub fn sum_by(text: &str, name: &str, keep: impl Fn(&Sample<'_>) -> bool) -> f64 {
    series(text, name)
        .filter(|s| keep(s))
        .map(|s| s.value)
        .sum()
}

/// The value of the unlabelled sample `name` (a gauge such as
/// `process_start_time_seconds`), if present.
pub fn value(text: &str, name: &str) -> Option<f64> {
    series(text, name)
        .find(|s| s.labels.is_empty())
        .map(|s| s.value)
}

/// Parses one line: `Ok(None)` for a comment or blank line, the sample
/// otherwise.
pub fn parse_line(line: &str) -> Result<Option<Sample<'_>>, ParseError> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(ParseError::Name);
    }
    let mut rest = line[name_end..].trim_start();
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or(ParseError::MissingValue)?;
    let value = parse_value(value).ok_or_else(|| ParseError::Value(value.to_string()))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| ParseError::Timestamp(t.to_string()))?,
        ),
    };
    if fields.next().is_some() {
        return Err(ParseError::MissingValue);
    }
    Ok(Some(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    }))
}

/// Parses `key="value",...}` (after the `{`) into `out`; returns what
/// follows the closing brace.
fn parse_labels<'a>(
    mut s: &'a str,
    out: &mut Vec<(&'a str, Cow<'a, str>)>,
) -> Result<&'a str, ParseError> {
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let (key, after) = s.split_once('=').ok_or(ParseError::Labels)?;
        let key = key.trim();
        if key.is_empty() {
            return Err(ParseError::Labels);
        }
        let after = after
            .trim_start()
            .strip_prefix('"')
            .ok_or(ParseError::Labels)?;
        let (value, after) = parse_quoted(after)?;
        out.push((key, value));
        s = after.trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(ParseError::Labels);
        }
    }
}

/// Reads a label value up to its closing quote (escapes `\\`, `\"`, `\n`);
/// returns it and what follows the quote. Borrows unless it had escapes.
fn parse_quoted(s: &str) -> Result<(Cow<'_, str>, &str), ParseError> {
    let mut owned: Option<String> = None;
    let mut chars = s.char_indices();
    let mut start = 0;
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let value = match owned {
                    Some(mut v) => {
                        v.push_str(&s[start..i]);
                        Cow::Owned(v)
                    }
                    None => Cow::Borrowed(&s[..i]),
                };
                return Ok((value, &s[i + 1..]));
            }
            '\\' => {
                let v = owned.get_or_insert_with(String::new);
                v.push_str(&s[start..i]);
                let (j, e) = chars.next().ok_or(ParseError::Labels)?;
                v.push(if e == 'n' { '\n' } else { e });
                start = j + e.len_utf8();
            }
            _ => {}
        }
    }
    Err(ParseError::Labels)
}

/// A sample value: a float, or `NaN`, `+Inf`, `-Inf` (Go's spelling).
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP request_total Total count of HTTP requests.
# TYPE request_total counter
request_total{direction="outbound",authority="web:80",dst_pod="web-a",tls="true"} 10
request_total{direction="outbound",authority="a\"},b",dst_pod="web-a"} 5
request_total{direction="inbound",tls="true",client_id="c"} 7 1700000000000
request_total_bucket{le="+Inf"} 99

process_start_time_seconds 1700000000.5
route_response_total{direction="outbound",classification="success",} 3
broken{direction="outbound" 4
"#;

    #[test]
    fn reads_names_labels_values() {
        let all: Vec<Sample<'_>> = samples(TEXT).collect();
        assert_eq!(all.len(), 6, "{all:#?}");
        assert_eq!(all[0].name, "request_total");
        assert_eq!(all[0].label("dst_pod"), Some("web-a"));
        assert_eq!(all[0].value, 10.0);
        assert!(matches!(all[0].labels[0].1, Cow::Borrowed("outbound")));
        assert_eq!(all[1].label("authority"), Some("a\"},b"));
        assert_eq!(all[2].timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(all[3].label("le"), Some("+Inf"));
        assert!(all[4].labels.is_empty());
        assert_eq!(all[5].label("classification"), Some("success"));
    }

    #[test]
    fn sums_and_values() {
        assert_eq!(sum(TEXT, "request_total", &[]), 22.0);
        assert_eq!(
            sum(TEXT, "request_total", &[("direction", "outbound")]),
            15.0
        );
        assert_eq!(
            sum(
                TEXT,
                "request_total",
                &[("direction", "outbound"), ("tls", "true")]
            ),
            10.0
        );
        assert_eq!(sum(TEXT, "request_total", &[("nope", "x")]), 0.0);
        assert_eq!(
            sum_by(TEXT, "request_total", |s| s.label("tls").is_none()),
            5.0
        );
        assert_eq!(
            value(TEXT, "process_start_time_seconds"),
            Some(1_700_000_000.5)
        );
        assert_eq!(value(TEXT, "process_start_time"), None);
        assert_eq!(value(TEXT, "request_total"), None);
    }

    #[test]
    fn explains_bad_lines() {
        assert_eq!(parse_line("# TYPE x counter"), Ok(None));
        assert_eq!(parse_line("   "), Ok(None));
        assert_eq!(parse_line("{a=\"b\"} 1"), Err(ParseError::Name));
        assert_eq!(parse_line("x{a=\"b\" 1"), Err(ParseError::Labels));
        assert_eq!(parse_line("x{a=b} 1"), Err(ParseError::Labels));
        assert_eq!(parse_line("x{a=\"b\\"), Err(ParseError::Labels));
        assert_eq!(parse_line("x"), Err(ParseError::MissingValue));
        assert_eq!(parse_line("x one"), Err(ParseError::Value("one".into())));
        assert_eq!(parse_line("x 1 t"), Err(ParseError::Timestamp("t".into())));
        let s = parse_line("x{} -Inf").ok().flatten().map(|s| s.value);
        assert_eq!(s, Some(f64::NEG_INFINITY));
        let s = parse_line("x{a=\"l1\\nl2\\\\\"} NaN").ok().flatten();
        assert_eq!(s.as_ref().and_then(|s| s.label("a")), Some("l1\nl2\\"));
        assert!(s.is_some_and(|s| s.value.is_nan()));
    }
}
