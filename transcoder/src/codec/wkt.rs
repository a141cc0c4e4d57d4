//! google.protobuf well-known types: which messages get a special JSON form, and the text forms
//! of Timestamp, Duration and FieldMask.

use std::io::Write as _;

use chrono::{DateTime, Datelike as _, Timelike as _};

/// A message with its own proto3-JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wkt {
    Timestamp,
    Duration,
    /// `google.protobuf.*Value` wrappers: the bare inner value (field 1).
    Wrapper,
    Struct,
    Value,
    ListValue,
    FieldMask,
    Any,
}

impl Wkt {
    /// The special form of the message named `full_name`, if any. `Empty` is a plain message.
    pub(crate) fn of(full_name: &str) -> Option<Wkt> {
        let name = full_name.strip_prefix("google.protobuf.")?;
        Some(match name {
            "Timestamp" => Wkt::Timestamp,
            "Duration" => Wkt::Duration,
            "DoubleValue" | "FloatValue" | "Int64Value" | "UInt64Value" | "Int32Value"
            | "UInt32Value" | "BoolValue" | "StringValue" | "BytesValue" => Wkt::Wrapper,
            "Struct" => Wkt::Struct,
            "Value" => Wkt::Value,
            "ListValue" => Wkt::ListValue,
            "FieldMask" => Wkt::FieldMask,
            "Any" => Wkt::Any,
            _ => return None,
        })
    }

    /// Whether the JSON form is a scalar (so a text value can be bound to it).
    pub(crate) fn is_scalar(self) -> bool {
        matches!(
            self,
            Wkt::Timestamp | Wkt::Duration | Wkt::Wrapper | Wkt::FieldMask
        )
    }
}

/// Smallest and largest Timestamp seconds: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const MIN_TIMESTAMP: i64 = -62_135_596_800;
const MAX_TIMESTAMP: i64 = 253_402_300_799;
/// Duration bound: +-10,000 years.
const MAX_DURATION: i64 = 315_576_000_000;

/// Writes the fractional part `.123`, `.123456` or `.123456789` (nothing when zero).
fn write_nanos(nanos: u32, out: &mut Vec<u8>) {
    if nanos == 0 {
        return;
    }
    let _ = if nanos.is_multiple_of(1_000_000) {
        write!(out, ".{:03}", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        write!(out, ".{:06}", nanos / 1_000)
    } else {
        write!(out, ".{nanos:09}")
    };
}

/// Writes a Timestamp as a quoted RFC 3339 UTC string; `false` when it is out of range.
pub(crate) fn write_timestamp(seconds: i64, nanos: i32, out: &mut Vec<u8>) -> bool {
    let Ok(nanos) = u32::try_from(nanos) else {
        return false;
    };
    if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&seconds) || nanos > 999_999_999 {
        return false;
    }
    let Some(t) = DateTime::from_timestamp(seconds, nanos) else {
        return false;
    };
    let _ = write!(
        out,
        "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    write_nanos(nanos, out);
    out.extend_from_slice(b"Z\"");
    true
}

/// Parses an RFC 3339 timestamp (any offset) into (seconds, nanos) since the epoch in UTC.
pub(crate) fn parse_timestamp(s: &str) -> Result<(i64, i32), String> {
    const ERR: &str = "must be an RFC 3339 timestamp, e.g. \"2024-01-31T12:00:00Z\"";
    let t = DateTime::parse_from_rfc3339(s).map_err(|_| ERR.to_owned())?;
    let seconds = t.timestamp();
    if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&seconds) {
        return Err(ERR.into());
    }
    // Leap seconds (":60") come back as nanos >= 1e9 in chrono; fold them into the second.
    let nanos = t.timestamp_subsec_nanos().min(999_999_999);
    Ok((seconds, nanos as i32))
}

/// Writes a Duration as a quoted `"1.5s"`; `false` when the value is invalid.
pub(crate) fn write_duration(seconds: i64, nanos: i32, out: &mut Vec<u8>) -> bool {
    if seconds.unsigned_abs() > MAX_DURATION as u64
        || nanos.unsigned_abs() > 999_999_999
        || (seconds > 0 && nanos < 0)
        || (seconds < 0 && nanos > 0)
    {
        return false;
    }
    out.push(b'"');
    if seconds < 0 || nanos < 0 {
        out.push(b'-');
    }
    let _ = write!(out, "{}", seconds.unsigned_abs());
    let nanos = nanos.unsigned_abs();
    if nanos != 0 {
        let mut digits = format!("{nanos:09}");
        while digits.ends_with('0') {
            digits.pop();
        }
        out.push(b'.');
        out.extend_from_slice(digits.as_bytes());
    }
    out.extend_from_slice(b"s\"");
    true
}

/// Parses `"1.5s"`, `"-0.001s"`, `"3s"` into (seconds, nanos) with matching signs.
pub(crate) fn parse_duration(s: &str) -> Result<(i64, i32), String> {
    const ERR: &str = "must be a duration in seconds, e.g. \"1.5s\"";
    let body = s.strip_suffix('s').ok_or(ERR)?;
    let (negative, body) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || frac.len() > 9 {
        return Err(ERR.into());
    }
    let seconds: i64 = whole.parse().map_err(|_| ERR)?;
    if seconds > MAX_DURATION {
        return Err(ERR.into());
    }
    let mut nanos: i32 = 0;
    for i in 0..9 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| i32::from(b - b'0'));
        nanos = nanos * 10 + digit;
    }
    Ok(if negative {
        (-seconds, -nanos)
    } else {
        (seconds, nanos)
    })
}

/// `foo_bar.baz_qux` -> `fooBar.bazQux`.
pub(crate) fn snake_to_camel(path: &str, out: &mut String) {
    let mut upper = false;
    for c in path.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
}

/// `fooBar.bazQux` -> `foo_bar.baz_qux`.
pub(crate) fn camel_to_snake(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64, n: i32) -> String {
        let mut out = Vec::new();
        assert!(write_timestamp(s, n, &mut out));
        String::from_utf8(out).unwrap()
    }

    fn dur(s: i64, n: i32) -> String {
        let mut out = Vec::new();
        assert!(write_duration(s, n, &mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts(0, 0), "\"1970-01-01T00:00:00Z\"");
        assert_eq!(
            ts(1_700_000_000, 500_000_000),
            "\"2023-11-14T22:13:20.500Z\""
        );
        assert_eq!(ts(1, 1_000), "\"1970-01-01T00:00:01.000001Z\"");
        assert_eq!(ts(1, 1), "\"1970-01-01T00:00:01.000000001Z\"");
        assert!(!write_timestamp(MAX_TIMESTAMP + 1, 0, &mut Vec::new()));
        assert!(!write_timestamp(0, -1, &mut Vec::new()));
        assert_eq!(
            parse_timestamp("2023-11-14T23:13:20.5+01:00"),
            Ok((1_700_000_000, 500_000_000))
        );
        assert!(parse_timestamp("2023-11-14").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(dur(1, 500_000_000), "\"1.5s\"");
        assert_eq!(dur(0, -1_000_000), "\"-0.001s\"");
        assert_eq!(dur(-3, 0), "\"-3s\"");
        assert!(!write_duration(1, -1, &mut Vec::new()));
        assert!(!write_duration(i64::MIN, i32::MIN, &mut Vec::new()));
        assert!(!write_timestamp(i64::MIN, i32::MIN, &mut Vec::new()));
        assert_eq!(parse_duration("1.5s"), Ok((1, 500_000_000)));
        assert_eq!(parse_duration("-0.001s"), Ok((0, -1_000_000)));
        assert!(parse_duration("1.5").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.1234567890s").is_err());
        assert!(parse_duration("+1s").is_err());
    }

    #[test]
    fn field_mask_case() {
        let mut s = String::new();
        snake_to_camel("foo_bar.baz_qux", &mut s);
        assert_eq!(s, "fooBar.bazQux");
        assert_eq!(camel_to_snake("fooBar.bazQux"), "foo_bar.baz_qux");
    }
}
