//! Durations as people type them (`5s`, `250ms`, `1m30s`, `1.5s`) for flags and manifests,
//! and back to text for output.

use std::time::Duration;

/// Parses one or more `<number><unit>` parts, units `ms`, `s`, `m`, `h`; the number may have a
/// decimal fraction (`1.5s`). `0` alone is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration; expected e.g. 5s, 250ms, 1m30s".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` has a number without a unit (ms, s, m or h)"))?;
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration; expected e.g. 5s, 250ms, 1m30s"))?;
        let unit_seconds = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(format!(
                    "`{text}` has unknown unit `{unit}`; use ms, s, m or h"
                ))
            }
        };
        total += Duration::try_from_secs_f64(value * unit_seconds)
            .map_err(|_| format!("`{text}` is out of range"))?;
        rest = next;
    }
    Ok(total)
}

/// Formats a duration compactly: `250ms`, `5s`, `1.5s`, `1m30s`, `2h0m5s`. Sub-millisecond
/// precision is dropped.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let total_seconds = duration.as_secs();
    let fraction_millis = duration.subsec_millis();
    let hours = total_seconds / 3600;
    let minutes = (total_seconds % 3600) / 60;
    let seconds = total_seconds % 60;
    let seconds_text = if fraction_millis == 0 {
        format!("{seconds}s")
    } else {
        let fraction = format!("{fraction_millis:03}");
        format!("{seconds}.{}s", fraction.trim_end_matches('0'))
    };
    match (hours, minutes) {
        (0, 0) => seconds_text,
        (0, _) => format!("{minutes}m{seconds_text}"),
        _ => format!("{hours}h{minutes}m{seconds_text}"),
    }
}

/// A protobuf duration as a std one; negative durations (never sent by sluiced) become zero.
pub fn from_proto(duration: &prost_types::Duration) -> Duration {
    if duration.seconds < 0 || duration.nanos < 0 {
        return Duration::ZERO;
    }
    Duration::new(
        duration.seconds.unsigned_abs(),
        duration.nanos.unsigned_abs(),
    )
}

/// A std duration as a protobuf one (saturating at the protobuf maximum).
pub fn to_proto(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_durations_with_a_hint() {
        assert!(parse_duration("5").unwrap_err().contains("without a unit"));
        assert!(parse_duration("5d")
            .unwrap_err()
            .contains("unknown unit `d`"));
        assert!(parse_duration("").unwrap_err().contains("expected e.g. 5s"));
        assert!(parse_duration("1..2s")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("s").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn formats_compactly_and_round_trips() {
        for (duration, text) in [
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(7205), "2h0m5s"),
        ] {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration));
        }
    }

    #[test]
    fn converts_to_and_from_protobuf() {
        let duration = Duration::from_millis(2500);
        let proto = to_proto(duration);
        assert_eq!((proto.seconds, proto.nanos), (2, 500_000_000));
        assert_eq!(from_proto(&proto), duration);
        let negative = prost_types::Duration {
            seconds: -1,
            nanos: 0,
        };
        assert_eq!(from_proto(&negative), Duration::ZERO);
    }
}
