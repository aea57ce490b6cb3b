//! Parsing `--duration`: `500ms`, `10s`, `2m`, `1h`, or bare seconds.

use std::time::Duration;

/// Parses a positive duration such as `10s`, `2m` or `30` (seconds).
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    if number.is_empty() {
        return Err(format!("{s:?}: expected a number such as 10s, 2m or 30"));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{number:?} is too large"))?;
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
    };
    let d = n
        .checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too long"))?;
    if d.is_zero() {
        return Err("the duration must be greater than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse(" 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(parse("").is_err());
        assert!(parse("s").is_err());
        assert!(parse("10x").is_err());
        assert!(parse("0s").is_err());
        assert!(parse("-5").is_err());
        assert!(parse("99999999999999999999").is_err());
    }
}
