//! Kubernetes resource quantities (`1`, `500m`, `0.5`, `1k`), as used by
//! TrafficSplit v1alpha1 backend weights and ServiceProfile `dstOverrides`.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A quantity exactly as written in the manifest (integer, decimal or
/// suffixed string). Parse it with [`Quantity::milli_value`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Quantity(pub String);

/// Why a quantity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the form `<decimal><suffix>`.
    #[error("{0:?} is not a quantity (expected e.g. 1, 500m, 0.5)")]
    Syntax(String),
    /// Too large to represent.
    #[error("{0:?} is out of range")]
    Range(String),
}

impl Quantity {
    /// Wraps a quantity string.
    pub fn new(s: impl Into<String>) -> Self {
        Quantity(s.into())
    }

    /// The quantity in thousandths, rounded up like Kubernetes'
    /// `Quantity.MilliValue()` (`1` → 1000, `900m` → 900, `0.5` → 500).
    pub fn milli_value(&self) -> Result<i64, QuantityError> {
        parse_milli(self.0.trim()).ok_or_else(|| {
            if self.0.trim().is_empty() || !looks_numeric(self.0.trim()) {
                QuantityError::Syntax(self.0.clone())
            } else {
                QuantityError::Range(self.0.clone())
            }
        })
    }

    /// The quantity as a whole number, if it is written as one (`90`, not
    /// `90m` nor `0.5`).
    pub fn as_integer(&self) -> Option<i64> {
        self.0.trim().parse().ok()
    }
}

fn looks_numeric(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .count();
    digits > 0 && parse_suffix(&s[digits..]).is_some()
}

/// Multiplier of a suffix as (numerator, power of ten).
fn parse_suffix(suffix: &str) -> Option<(i128, i32)> {
    let binary = |n: u32| Some((1024i128.pow(n), 0));
    match suffix {
        "" => Some((1, 0)),
        "m" => Some((1, -3)),
        "k" => Some((1, 3)),
        "M" => Some((1, 6)),
        "G" => Some((1, 9)),
        "T" => Some((1, 12)),
        "P" => Some((1, 15)),
        "E" => Some((1, 18)),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let n: i32 = exp.parse().ok()?;
            (-30..=30).contains(&n).then_some((1, n))
        }
    }
}

fn parse_milli(s: &str) -> Option<i64> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(end);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 30 {
        return None;
    }
    let (mult, pow10) = parse_suffix(suffix)?;
    let mut mantissa: i128 = 0;
    for c in whole.chars().chain(frac.chars()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(c.to_digit(10)?))?;
    }
    // value = mantissa * mult * 10^(pow10 + 3 - frac.len()) milli-units.
    let scale = pow10 + 3 - i32::try_from(frac.len()).ok()?;
    let mut milli = mantissa.checked_mul(mult)?;
    if scale >= 0 {
        milli = milli.checked_mul(10i128.checked_pow(scale.unsigned_abs())?)?;
    } else {
        let div = 10i128.checked_pow(scale.unsigned_abs())?;
        // Round away from zero, as Kubernetes does for MilliValue.
        milli = (milli + div - 1) / div;
    }
    if negative {
        milli = -milli;
    }
    i64::try_from(milli).ok()
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_integer() {
            Some(n) => s.serialize_i64(n),
            None => s.serialize_str(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
            Str(String),
        }
        Ok(Quantity(match Raw::deserialize(d)? {
            Raw::Int(n) => n.to_string(),
            Raw::Float(x) => x.to_string(),
            Raw::Str(s) => s,
        }))
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> Result<i64, QuantityError> {
        Quantity::new(s).milli_value()
    }

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(milli("1"), Ok(1000));
        assert_eq!(milli("900m"), Ok(900));
        assert_eq!(milli("0.5"), Ok(500));
        assert_eq!(milli("1.5"), Ok(1500));
        assert_eq!(milli("1k"), Ok(1_000_000));
        assert_eq!(milli("1Ki"), Ok(1_024_000));
        assert_eq!(milli("-10m"), Ok(-10));
        assert_eq!(milli("1e3"), Ok(1_000_000));
        assert_eq!(milli("0.0001"), Ok(1));
        assert!(matches!(milli("lots"), Err(QuantityError::Syntax(_))));
        assert!(matches!(milli(""), Err(QuantityError::Syntax(_))));
        assert!(matches!(milli("1x"), Err(QuantityError::Syntax(_))));
        assert_eq!(milli("1P"), Ok(1_000_000_000_000_000_000));
        assert!(matches!(milli("1E"), Err(QuantityError::Range(_))));
        assert!(matches!(
            milli("99999999999999999999"),
            Err(QuantityError::Range(_))
        ));
    }
}
