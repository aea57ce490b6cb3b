//! Parsing durations written by people: three syntaxes, one parser core.
//!
//! | function | syntax | used by |
//! | --- | --- | --- |
//! | [`parse_proxy_duration`] | linkerd2-proxy's `LINKERD2_PROXY_*` variables: `^\s*(\d+)(ms\|s\|m\|h\|d)?\s*$`, a bare number only if it is `0` | the proxy's configuration |
//! | [`parse_go_duration`] | Go's `time.ParseDuration`: `[-+]?(\d*\.?\d*(ns\|us\|µs\|ms\|s\|m\|h))+` or `0`, signed nanoseconds | Kubernetes manifests (ServiceProfile timeouts, retry-budget TTLs) |
//! | [`parse_flag_duration`] / [`parse_positive_flag_duration`] | the superset accepted by command-line flags (below) | `wisp` and `wisp-bench` flags |
//!
//! # Command-line flags
//!
//! Flags used to be parsed by three different functions, each accepting a
//! slightly different language (`wisp identity --lifetime 1h30m`,
//! `wisp demo --duration 30`, `wisp-bench --duration 1.5s`). The flag syntax
//! is the union of them, written as Go syntax with two additions:
//!
//! * the unit `d` (24 h), as the proxy and `wisp identity` accept;
//! * a bare number is seconds (`30`, `1.5`), as `wisp demo` and
//!   `wisp-bench` accept;
//! * white space around the text and between a number and its unit
//!   (`10 s`) is ignored; parts of a compound duration must be adjacent
//!   (`1h30m`, not `1h 30m`).
//!
//! Negative durations are rejected; [`parse_positive_flag_duration`] also
//! rejects zero (certificate lifetimes, token TTLs, a demo's run time).
//! The one form an old flag parser took that is not accepted any more is
//! `wisp-bench`'s floating-point exponent notation (`1e3ms`), which nobody
//! writes for a duration.

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text does not follow the syntax at all.
    #[error("invalid duration {text:?} (expected {expected})")]
    Syntax {
        /// The whole text as given.
        text: String,
        /// What the syntax looks like, for the message.
        expected: &'static str,
    },
    /// A number without a unit where one is required.
    #[error("duration {0:?} needs a unit (ms, s, m, h or d)")]
    MissingUnit(String),
    /// A unit the syntax does not know.
    #[error("unknown unit {unit:?} in duration {text:?}")]
    Unit {
        /// The unit as written.
        unit: String,
        /// The whole text as given.
        text: String,
    },
    /// Too long to represent.
    #[error("duration {0:?} is out of range")]
    Range(String),
    /// Negative where only durations of zero or more make sense.
    #[error("duration {0:?} must not be negative")]
    Negative(String),
    /// Zero where only positive durations make sense.
    #[error("duration {0:?} must be greater than zero")]
    Zero(String),
}

const PROXY_EXPECTED: &str = "a number followed by ms, s, m, h or d";
const GO_EXPECTED: &str = "Go syntax such as 250ms, 1.5s, 1h30m";
const FLAG_EXPECTED: &str = "such as 500ms, 10s, 1.5s, 1h30m, 2d or bare seconds";

/// Parses a duration the way linkerd2-proxy reads its `LINKERD2_PROXY_*`
/// variables: `^\s*(\d+)(ms|s|m|h|d)?\s*$`, where a bare number is valid
/// only if it is `0`.
///
/// ```
/// # use std::time::Duration;
/// # use wisp_common::duration::parse_proxy_duration;
/// assert_eq!(parse_proxy_duration(" 150ms "), Ok(Duration::from_millis(150)));
/// assert_eq!(parse_proxy_duration("0"), Ok(Duration::ZERO));
/// assert!(parse_proxy_duration("5").is_err());
/// ```
pub fn parse_proxy_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(DurationError::Syntax {
            text: text.to_string(),
            expected: PROXY_EXPECTED,
        });
    }
    let n: u64 = s[..digits]
        .parse()
        .map_err(|_| DurationError::Range(text.to_string()))?;
    let unit_ms: u64 = match &s[digits..] {
        "" if n == 0 => 0,
        "" => return Err(DurationError::MissingUnit(text.to_string())),
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(DurationError::Unit {
                unit: other.to_string(),
                text: text.to_string(),
            })
        }
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| DurationError::Range(text.to_string()))
}

/// Parses a Go `time.ParseDuration` duration (`250ms`, `1.5s`, `1h30m`,
/// `-1s`, `0`) into signed nanoseconds, as Kubernetes manifests write them.
///
/// Units are `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m` and `h`; a number
/// without a unit is only valid as `0`. Totals beyond `i64::MAX`
/// nanoseconds (about 292 years) are out of range, as in Go.
///
/// ```
/// # use wisp_common::duration::parse_go_duration;
/// assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
/// assert_eq!(parse_go_duration("-1.5s"), Ok(-1_500_000_000));
/// ```
pub fn parse_go_duration(text: &str) -> Result<i128, DurationError> {
    parse_units(text, text, Units::Go)
}

/// Parses a command-line flag's duration: Go syntax plus the unit `d`, bare
/// numbers as seconds and white space before a unit (see the [module
/// documentation](self)). Zero is allowed; negative durations are not.
///
/// ```
/// # use std::time::Duration;
/// # use wisp_common::duration::parse_flag_duration;
/// assert_eq!(parse_flag_duration("1.5"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_flag_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_flag_duration("0"), Ok(Duration::ZERO));
/// ```
pub fn parse_flag_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let bare = !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let nanos = if bare {
        // Bare seconds: the number scaled as if written with `s`.
        parse_number(s, text, 1_000_000_000, Units::Flag)?
    } else {
        parse_units(s, text, Units::Flag)?
    };
    if nanos < 0 {
        return Err(DurationError::Negative(text.to_string()));
    }
    let nanos = u64::try_from(nanos).map_err(|_| DurationError::Range(text.to_string()))?;
    Ok(Duration::from_nanos(nanos))
}

/// [`parse_flag_duration`], rejecting zero as well: for lifetimes, TTLs and
/// run times, where zero is a mistake rather than "off".
///
/// Fits clap's `value_parser` directly.
pub fn parse_positive_flag_duration(text: &str) -> Result<Duration, DurationError> {
    let d = parse_flag_duration(text)?;
    if d.is_zero() {
        return Err(DurationError::Zero(text.to_string()));
    }
    Ok(d)
}

/// Which units (and spacing) a compound duration may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Units {
    /// Go's `time.ParseDuration`, exactly.
    Go,
    /// Go plus `d`, with optional white space between number and unit.
    Flag,
}

impl Units {
    fn expected(self) -> &'static str {
        match self {
            Units::Go => GO_EXPECTED,
            Units::Flag => FLAG_EXPECTED,
        }
    }
}

/// `[-+]?(number unit)+` or `[-+]?0`, in signed nanoseconds; `text` is the
/// original input, for errors.
fn parse_units(s: &str, text: &str, units: Units) -> Result<i128, DurationError> {
    let syntax = || DurationError::Syntax {
        text: text.to_string(),
        expected: units.expected(),
    };
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(syntax());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(num_end);
        if !is_number(number) {
            return Err(syntax());
        }
        let after = match units {
            Units::Go => after,
            Units::Flag => after.trim_start(),
        };
        let unit_end = after
            .find(|c: char| {
                c.is_ascii_digit() || c == '.' || (units == Units::Flag && c.is_whitespace())
            })
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" if units == Units::Flag => 86_400_000_000_000,
            "" => return Err(syntax()),
            other => {
                return Err(DurationError::Unit {
                    unit: other.to_string(),
                    text: text.to_string(),
                })
            }
        };
        let part = parse_number(number, text, scale, units)?;
        total = total
            .checked_add(part)
            .ok_or_else(|| DurationError::Range(text.to_string()))?;
        if total > i128::from(i64::MAX) {
            return Err(DurationError::Range(text.to_string()));
        }
        rest = next;
    }
    Ok(if negative { -total } else { total })
}

/// Whether `number` (made of ASCII digits and dots) is `digits[.digits]`
/// with at least one digit.
fn is_number(number: &str) -> bool {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let empty = whole.is_empty() && frac.is_empty();
    !empty && !frac.contains('.')
}

/// `digits[.digits]` (either side may be empty, not both) times `scale`
/// nanoseconds, truncated to whole nanoseconds. For bare flag numbers the
/// sign is accepted here too.
fn parse_number(
    number: &str,
    text: &str,
    scale: i128,
    units: Units,
) -> Result<i128, DurationError> {
    let syntax = || DurationError::Syntax {
        text: text.to_string(),
        expected: units.expected(),
    };
    let range = || DurationError::Range(text.to_string());
    let (negative, number) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    if !is_number(number) {
        return Err(syntax());
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let whole_n: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| range())?
    };
    let mut part = whole_n.checked_mul(scale).ok_or_else(range)?;
    let mut div = scale;
    for d in frac.chars().take(18) {
        div /= 10;
        if div == 0 {
            break;
        }
        part += i128::from(d.to_digit(10).unwrap_or(0)) * div;
    }
    if part > i128::from(i64::MAX) {
        return Err(range());
    }
    Ok(if negative { -part } else { part })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_syntax() {
        // The proxy's own tests (proxy/src/config.rs), unchanged.
        assert_eq!(parse_proxy_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_proxy_duration(" 150ms "),
            Ok(Duration::from_millis(150))
        );
        assert_eq!(parse_proxy_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_proxy_duration("5").is_err());
        assert!(parse_proxy_duration("5x").is_err());
        // And the rest of the grammar.
        assert_eq!(parse_proxy_duration("3d"), Ok(Duration::from_secs(259_200)));
        assert_eq!(parse_proxy_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_proxy_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_proxy_duration("5"),
            Err(DurationError::MissingUnit("5".into()))
        );
        for bad in [
            "",
            "ms",
            "-1s",
            "1.5s",
            "1h30m",
            "1 s",
            "99999999999999999999s",
        ] {
            assert!(parse_proxy_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_proxy_duration("18446744073709551615d"),
            Err(DurationError::Range("18446744073709551615d".into()))
        );
    }

    #[test]
    fn go_syntax() {
        // The tests of profiles/src/types/duration.rs, unchanged.
        assert_eq!(parse_go_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("2m"), Ok(120_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("10us"), Ok(10_000));
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("1d").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("1..2s").is_err());
        // And the corners.
        assert_eq!(parse_go_duration("µs"), Err(go_syntax_error("µs")));
        assert_eq!(parse_go_duration("1µs"), Ok(1_000));
        assert_eq!(parse_go_duration("1.s"), Ok(1_000_000_000));
        assert_eq!(parse_go_duration("+2h"), Ok(7_200_000_000_000));
        assert_eq!(parse_go_duration("1.0000000001s"), Ok(1_000_000_000));
        assert_eq!(
            parse_go_duration("1d"),
            Err(DurationError::Unit {
                unit: "d".into(),
                text: "1d".into()
            })
        );
        assert!(parse_go_duration(" 1s").is_err());
        assert!(parse_go_duration("1 s").is_err());
        assert!(parse_go_duration("-").is_err());
        assert_eq!(
            parse_go_duration("2562047h47m16.854775807s"),
            Ok(i64::MAX.into())
        );
        assert_eq!(
            parse_go_duration("2562048h"),
            Err(DurationError::Range("2562048h".into()))
        );
    }

    fn go_syntax_error(text: &str) -> DurationError {
        DurationError::Syntax {
            text: text.into(),
            expected: GO_EXPECTED,
        }
    }

    #[test]
    fn flag_syntax_accepts_every_old_flag_form() {
        let ok = |s: &str, d: Duration| assert_eq!(parse_flag_duration(s), Ok(d), "{s:?}");
        // wisp identity (--lifetime, --skew, --ttl).
        ok("24h", Duration::from_secs(86_400));
        ok("20s", Duration::from_secs(20));
        ok("1h30m", Duration::from_secs(5_400));
        ok("24h0m0s", Duration::from_secs(86_400));
        ok("500ms", Duration::from_millis(500));
        ok("365d", Duration::from_secs(365 * 86_400));
        ok("8760h", Duration::from_secs(8_760 * 3_600));
        // wisp demo --duration.
        ok("10s", Duration::from_secs(10));
        ok("30", Duration::from_secs(30));
        ok(" 1h ", Duration::from_secs(3_600));
        ok("10 s", Duration::from_secs(10));
        // wisp-bench.
        ok("10", Duration::from_secs(10));
        ok("2m", Duration::from_secs(120));
        ok("1.5s", Duration::from_millis(1_500));
        ok("1.5", Duration::from_millis(1_500));
        ok(".5", Duration::from_millis(500));
        ok("0", Duration::ZERO);
        ok("0s", Duration::ZERO);
        ok("+5", Duration::from_secs(5));
        ok("-0", Duration::ZERO);
        // Go forms.
        ok("250us", Duration::from_micros(250));
        ok("1.5h", Duration::from_secs(5_400));
    }

    #[test]
    fn flag_syntax_rejects_nonsense() {
        for bad in [
            "",
            "h",
            "s",
            "10x",
            "abc",
            "1h 2m",
            "1..2s",
            "99999999999999999999h",
            ".",
            "1e3ms",
        ] {
            assert!(
                parse_flag_duration(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert_eq!(
            parse_flag_duration("-5s"),
            Err(DurationError::Negative("-5s".into()))
        );
        assert_eq!(
            parse_flag_duration("-5"),
            Err(DurationError::Negative("-5".into()))
        );
        assert!(matches!(
            parse_flag_duration("10x"),
            Err(DurationError::Unit { unit, .. }) if unit == "x"
        ));
    }

    #[test]
    fn positive_flags_reject_zero() {
        assert_eq!(
            parse_positive_flag_duration("0s"),
            Err(DurationError::Zero("0s".into()))
        );
        assert!(parse_positive_flag_duration("0").is_err());
        assert!(parse_positive_flag_duration("-5").is_err());
        assert_eq!(
            parse_positive_flag_duration("1ms"),
            Ok(Duration::from_millis(1))
        );
    }

    #[test]
    fn errors_read_well() {
        let e = parse_go_duration("1x").expect_err("bad unit");
        assert_eq!(e.to_string(), "unknown unit \"x\" in duration \"1x\"");
        let e = parse_flag_duration("abc").expect_err("not a duration");
        assert!(e.to_string().contains("bare seconds"), "{e}");
    }
}
