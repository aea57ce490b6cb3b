//! Go `time.ParseDuration` syntax (`250ms`, `1.5s`, `2m`, `1h30m`), used by
//! route timeouts and retry-budget TTLs.

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not Go duration syntax.
    #[error("invalid duration {0:?} (expected Go syntax such as 250ms, 1.5s, 1h30m)")]
    Syntax(String),
    /// A unit other than ns, us, µs, ms, s, m, h.
    #[error("unknown unit {unit:?} in duration {text:?}")]
    Unit {
        /// The unit as written.
        unit: String,
        /// The whole duration.
        text: String,
    },
    /// Too long to represent.
    #[error("duration {0:?} is out of range")]
    Range(String),
}

/// Parses a Go duration into signed nanoseconds.
pub fn parse_go_duration(text: &str) -> Result<i128, DurationError> {
    let syntax = || DurationError::Syntax(text.to_string());
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
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
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(syntax());
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(syntax()),
            other => {
                return Err(DurationError::Unit {
                    unit: other.to_string(),
                    text: text.to_string(),
                })
            }
        };
        let range = || DurationError::Range(text.to_string());
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
        total = total.checked_add(part).ok_or_else(range)?;
        if total > i128::from(i64::MAX) {
            return Err(range());
        }
        rest = next;
    }
    Ok(if negative { -total } else { total })
}

/// Converts signed nanoseconds into a protobuf `Duration`.
pub fn to_proto_duration(nanos: i128) -> prost_types::Duration {
    let seconds = nanos / 1_000_000_000;
    let rem = nanos % 1_000_000_000;
    prost_types::Duration {
        seconds: i64::try_from(seconds).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX }),
        nanos: i32::try_from(rem).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
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
    }

    #[test]
    fn converts_to_proto() {
        let d = to_proto_duration(1_500_000_000);
        assert_eq!((d.seconds, d.nanos), (1, 500_000_000));
    }
}
