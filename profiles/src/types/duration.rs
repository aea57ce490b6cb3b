//! Go `time.ParseDuration` syntax (`250ms`, `1.5s`, `2m`, `1h30m`), used by
//! route timeouts and retry-budget TTLs. The parser is
//! [`wisp_common::duration::parse_go_duration`] (its tests live there); this
//! module re-exports it and converts to the protobuf type.

pub use wisp_common::duration::{parse_go_duration, DurationError};

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
    fn converts_to_proto() {
        let d = to_proto_duration(1_500_000_000);
        assert_eq!((d.seconds, d.nanos), (1, 500_000_000));
    }
}
