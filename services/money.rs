//! Money at the JSON/gRPC edge.
//!
//! Inside the services every amount is an `i64` count of cents; the wire
//! carries a `double` in currency units (`1199.99`), as the contract's
//! examples do. This module owns the only two conversions between them, so
//! rounding is decided in one place. It must never be used to do arithmetic
//! on amounts: add and multiply cents, convert at the edge.

/// Largest amount in cents that a `double` still holds exactly (2^53 - 1).
const MAX_EXACT_CENTS: f64 = 9_007_199_254_740_991.0;

/// How far (in currency units) a value may sit from a whole cent and still
/// count as that cent: absorbs binary floating-point noise such as
/// `0.1 + 0.2`, rejects a real third decimal such as `10.001`.
const TOLERANCE: f64 = 1e-6;

/// Why a wire amount is not a valid amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// NaN or an infinity.
    #[error("must be a finite number")]
    NotFinite,
    /// Below zero where the caller asked for a non-negative amount.
    #[error("must not be negative")]
    Negative,
    /// A fraction of a cent.
    #[error("must have at most 2 decimal places")]
    TooPrecise,
    /// Beyond what a double represents to the cent.
    #[error("is too large")]
    TooLarge,
}

/// Cents to the wire's currency units: `119999` -> `1199.99`.
pub fn to_wire(cents: i64) -> f64 {
    // Division (not multiplication by 0.01) gives the double nearest to the
    // decimal value, so `1199.99` prints as `1199.99`.
    cents as f64 / 100.0
}

/// The wire's currency units to cents: `1199.99` -> `119999`.
///
/// Accepts any sign (a filter or a refund may be negative; the caller
/// decides); see [`from_wire_non_negative`] for amounts that must not be.
pub fn from_wire(value: f64) -> Result<i64, MoneyError> {
    if !value.is_finite() {
        return Err(MoneyError::NotFinite);
    }
    let scaled = value * 100.0;
    if scaled.abs() > MAX_EXACT_CENTS {
        return Err(MoneyError::TooLarge);
    }
    let cents = scaled.round();
    if (scaled - cents).abs() / 100.0 > TOLERANCE {
        return Err(MoneyError::TooPrecise);
    }
    // In range by the check above, so the cast is exact.
    Ok(cents as i64)
}

/// Like [`from_wire`], but a negative amount is an error.
pub fn from_wire_non_negative(value: f64) -> Result<i64, MoneyError> {
    if value < 0.0 {
        return Err(MoneyError::Negative);
    }
    from_wire(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_wire_gives_currency_units() {
        assert_eq!(to_wire(119_999), 1199.99);
        assert_eq!(to_wire(0), 0.0);
        assert_eq!(to_wire(1), 0.01);
        assert_eq!(to_wire(-250), -2.5);
    }

    #[test]
    fn from_wire_gives_cents() {
        assert_eq!(from_wire(1199.99), Ok(119_999));
        assert_eq!(from_wire(99.99), Ok(9_999));
        assert_eq!(from_wire(0.01), Ok(1));
        assert_eq!(from_wire(10.0), Ok(1_000));
        assert_eq!(from_wire(0.0), Ok(0));
        assert_eq!(from_wire(-5.5), Ok(-550));
    }

    #[test]
    fn floating_point_noise_is_absorbed() {
        assert_eq!(from_wire(0.1 + 0.2), Ok(30));
        assert_eq!(from_wire(1.15 * 3.0), Ok(345));
        assert_eq!(from_wire(4.35), Ok(435));
    }

    #[test]
    fn every_cent_survives_a_round_trip() {
        for cents in (0..200_000).chain(9_999_999_900..10_000_000_100) {
            assert_eq!(from_wire(to_wire(cents)), Ok(cents), "{cents}");
            assert_eq!(from_wire(to_wire(-cents)), Ok(-cents), "{cents}");
        }
    }

    #[test]
    fn fractions_of_a_cent_are_rejected() {
        assert_eq!(from_wire(10.001), Err(MoneyError::TooPrecise));
        assert_eq!(from_wire(0.005), Err(MoneyError::TooPrecise));
        assert_eq!(from_wire(99.999), Err(MoneyError::TooPrecise));
        assert_eq!(from_wire(1.000_1), Err(MoneyError::TooPrecise));
    }

    #[test]
    fn non_numbers_are_rejected() {
        assert_eq!(from_wire(f64::NAN), Err(MoneyError::NotFinite));
        assert_eq!(from_wire(f64::INFINITY), Err(MoneyError::NotFinite));
        assert_eq!(from_wire(f64::NEG_INFINITY), Err(MoneyError::NotFinite));
    }

    #[test]
    fn huge_amounts_are_rejected() {
        assert_eq!(from_wire(1e20), Err(MoneyError::TooLarge));
        assert_eq!(from_wire(-1e20), Err(MoneyError::TooLarge));
        assert_eq!(from_wire(f64::MAX), Err(MoneyError::TooLarge));
        assert_eq!(from_wire(90_000_000_000_000.0), Ok(9_000_000_000_000_000));
    }

    #[test]
    fn negative_amounts_are_rejected_when_asked() {
        assert_eq!(from_wire_non_negative(-0.01), Err(MoneyError::Negative));
        assert_eq!(from_wire_non_negative(0.0), Ok(0));
        assert_eq!(from_wire_non_negative(12.34), Ok(1_234));
        assert_eq!(from_wire_non_negative(f64::NAN), Err(MoneyError::NotFinite));
    }
}
