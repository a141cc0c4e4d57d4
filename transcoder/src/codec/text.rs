//! Proto3-JSON parsing of textual scalars, shared by the body decoder (JSON strings) and by
//! [`bind_value`](super::bind_value) (path variables, query parameters). Every function returns
//! the human half of a [`CodecError`](super::CodecError); the caller adds the field path.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use prost_reflect::{EnumDescriptor, Kind, Value};

/// Base64 decoders that accept padded and unpadded input.
const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An integer read from JSON or text, wide enough for every protobuf integer type.
pub(crate) fn parse_int_text(s: &str) -> Result<i128, String> {
    if let Ok(i) = s.parse::<i64>() {
        return Ok(i128::from(i));
    }
    if let Ok(u) = s.parse::<u64>() {
        return Ok(i128::from(u));
    }
    // Exponent or fraction forms ("1e3", "2.0"): accepted when integral.
    let looks_numeric = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    match s.parse::<f64>() {
        Ok(f) if looks_numeric && !s.is_empty() => float_to_int(f),
        _ => Err("must be an integer".into()),
    }
}

/// An integral float as an integer; fractions and non-finite values are errors. Magnitudes
/// beyond i128 saturate, which every protobuf integer type then rejects as out of range.
pub(crate) fn float_to_int(f: f64) -> Result<i128, String> {
    if !f.is_finite() || f.fract() != 0.0 {
        return Err("must be an integer".into());
    }
    Ok(f as i128)
}

/// The integer `i` as a value of an integer kind, or the range error.
pub(crate) fn int_value(kind: &Kind, i: i128) -> Result<Value, String> {
    fn range<T: TryFrom<i128> + std::fmt::Display>(i: i128, min: T, max: T) -> Result<T, String> {
        T::try_from(i).map_err(|_| format!("must be an integer between {min} and {max}"))
    }
    Ok(match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(range(i, i32::MIN, i32::MAX)?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(range(i, i64::MIN, i64::MAX)?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(range(i, u32::MIN, u32::MAX)?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(range(i, u64::MIN, u64::MAX)?),
        _ => return Err("must be an integer".into()),
    })
}

/// A float from text: a decimal number or one of `NaN`, `Infinity`, `-Infinity`.
pub(crate) fn parse_float_text(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => return Ok(f64::NAN),
        "Infinity" => return Ok(f64::INFINITY),
        "-Infinity" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    // Rust also accepts "inf", "nan", ...: only digits and number punctuation here.
    let numeric = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    match s.parse::<f64>() {
        Ok(f) if numeric && f.is_finite() => Ok(f),
        _ => Err("must be a number".into()),
    }
}

/// A float as a value of kind `double` or `float` (range-checked for `float`).
pub(crate) fn float_value(kind: &Kind, f: f64) -> Result<Value, String> {
    match kind {
        Kind::Double => Ok(Value::F64(f)),
        Kind::Float => {
            if f.is_finite() && f.abs() > f64::from(f32::MAX) {
                Err("must be a number within the range of a 32-bit float".into())
            } else {
                Ok(Value::F32(f as f32))
            }
        }
        _ => Err("must be a number".into()),
    }
}

/// Bytes from standard or URL-safe base64, padded or not.
pub(crate) fn parse_base64(s: &str) -> Result<Bytes, String> {
    let engine = if s.contains(['-', '_']) {
        &URL_SAFE_ANY_PAD
    } else {
        &STANDARD_ANY_PAD
    };
    engine
        .decode(s)
        .map(Bytes::from)
        .map_err(|_| "must be base64".into())
}

/// The enum value named `s` (by the naming rule, by its full name, either case-insensitively) or
/// numbered `s`.
pub(crate) fn parse_enum_text(e: &EnumDescriptor, s: &str) -> Result<i32, String> {
    for v in e.values() {
        if v.name().eq_ignore_ascii_case(s)
            || enum_value_suffix(e.name(), v.name()).eq_ignore_ascii_case(s)
        {
            return Ok(v.number());
        }
    }
    if let Ok(n) = s.parse::<i32>() {
        return enum_number(e, i64::from(n));
    }
    Err(enum_error(e))
}

/// The enum value numbered `n`, when the enum defines it.
pub(crate) fn enum_number(e: &EnumDescriptor, n: i64) -> Result<i32, String> {
    match i32::try_from(n).ok().filter(|n| e.get_value(*n).is_some()) {
        Some(n) => Ok(n),
        None => Err(enum_error(e)),
    }
}

/// `must be one of: "dark_red", "light_blue"` (the unset zero value is not offered).
pub(crate) fn enum_error(e: &EnumDescriptor) -> String {
    let mut msg = String::from("must be one of:");
    let mut first = true;
    for v in e.values().filter(|v| v.number() != 0) {
        msg.push_str(if first { " \"" } else { ", \"" });
        first = false;
        for c in enum_value_suffix(e.name(), v.name()).chars() {
            msg.push(c.to_ascii_lowercase());
        }
        msg.push('"');
    }
    msg
}

/// The value name without the enum's own name in UPPER_SNAKE as a prefix:
/// (`OrderStatus`, `ORDER_STATUS_PENDING`) -> `PENDING`. Names without the prefix are kept whole.
pub(crate) fn enum_value_suffix<'a>(enum_name: &str, value_name: &'a str) -> &'a str {
    let value = value_name.as_bytes();
    let name = enum_name.as_bytes();
    let mut j = 0;
    let mut matches = |b: u8| {
        if value.get(j) == Some(&b) {
            j += 1;
            true
        } else {
            false
        }
    };
    for (i, &c) in name.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            let prev = name[i - 1];
            let next_lower = name.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            let boundary = prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower);
            if boundary && !matches(b'_') {
                return value_name;
            }
        }
        if !matches(c.to_ascii_uppercase()) {
            return value_name;
        }
    }
    match value_name.get(j..) {
        Some(rest) if rest.len() > 1 && rest.starts_with('_') => &rest[1..],
        _ => value_name,
    }
}

/// A boolean from text: `true`, `false`, `1` or `0`.
pub(crate) fn parse_bool_text(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// A scalar (non-message) field value from text, by the field's kind. Strings are taken raw.
pub(crate) fn parse_scalar_text(kind: &Kind, s: &str) -> Result<Value, String> {
    match kind {
        Kind::Double | Kind::Float => float_value(kind, parse_float_text(s)?),
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint32
        | Kind::Fixed32
        | Kind::Uint64
        | Kind::Fixed64 => int_value(kind, parse_int_text(s)?),
        Kind::Bool => parse_bool_text(s).map(Value::Bool),
        Kind::String => Ok(Value::String(s.to_owned())),
        Kind::Bytes => parse_base64(s).map(Value::Bytes),
        Kind::Enum(e) => parse_enum_text(e, s).map(Value::EnumNumber),
        Kind::Message(_) => Err("must be an object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_prefix_rule() {
        assert_eq!(
            enum_value_suffix("OrderStatus", "ORDER_STATUS_PENDING"),
            "PENDING"
        );
        assert_eq!(enum_value_suffix("Color", "COLOR_DARK_RED"), "DARK_RED");
        assert_eq!(enum_value_suffix("HTTPMethod", "HTTP_METHOD_GET"), "GET");
        assert_eq!(enum_value_suffix("V2Kind", "V2_KIND_A"), "A");
        assert_eq!(enum_value_suffix("Color", "RED"), "RED");
        assert_eq!(enum_value_suffix("Color", "COLOR"), "COLOR");
        assert_eq!(enum_value_suffix("Color", "COLORFUL"), "COLORFUL");
        assert_eq!(enum_value_suffix("Color", "COLOR_"), "COLOR_");
    }

    #[test]
    fn ints_and_floats() {
        assert_eq!(parse_int_text("-12"), Ok(-12));
        assert_eq!(parse_int_text("18446744073709551615"), Ok(u64::MAX.into()));
        assert_eq!(parse_int_text("1e3"), Ok(1000));
        assert!(parse_int_text("1.5").is_err());
        assert!(parse_int_text("inf").is_err());
        assert!(parse_int_text("").is_err());
        assert!(int_value(&Kind::Int32, 1 << 40).is_err());
        assert!(int_value(&Kind::Uint64, -1).is_err());
        assert_eq!(parse_float_text("1.5"), Ok(1.5));
        assert!(parse_float_text("NaN").unwrap().is_nan());
        assert!(parse_float_text("nan").is_err());
        assert!(parse_float_text("inf").is_err());
        assert!(float_value(&Kind::Float, 1e300).is_err());
    }

    #[test]
    fn base64_both_alphabets() {
        assert_eq!(parse_base64("+/8=").unwrap().as_ref(), [0xfb, 0xff]);
        assert_eq!(parse_base64("-_8").unwrap().as_ref(), [0xfb, 0xff]);
        assert!(parse_base64("!!").is_err());
    }
}
