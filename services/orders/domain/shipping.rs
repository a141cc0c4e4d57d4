//! Shipping: methods (standard, express, overnight: rows of `shipping_methods`) and their
//! rates by destination zone (`shipping_rates`), and [`quote`], the one function that prices
//! a parcel, used by POST /shipping/rates and by POST /orders alike.
//!
//! A zone is a country, or a state of it where a row names one (Alaska and Hawaii cost more
//! than the contiguous US): the state's row wins over the country's. A method without a row
//! for the country does not serve it. The price is the zone's base plus its per-kilogram
//! charge for every started kilogram above the first; a method that allows it
//! (`free_over_threshold`: standard) is free from FREE_SHIPPING_THRESHOLD of goods (after the
//! coupon) or with a free-shipping coupon; express and overnight never are.

use super::location::Destination;
use crate::validation::Violations;

/// The method used when an order names none.
pub const DEFAULT_METHOD: &str = "standard";

/// Grams in a kilogram; the base rate covers the first one.
const GRAMS_PER_KG: i64 = 1000;

/// A shipping method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippingMethod {
    pub code: String,
    pub name: String,
    /// Free from the threshold and with a free-shipping coupon.
    pub free_over_threshold: bool,
}

/// A method's rate to one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRate {
    pub method: String,
    pub country: String,
    /// '' for the whole country.
    pub state: String,
    pub base_cents: i64,
    pub per_kg_cents: i64,
    pub min_days: i32,
    pub max_days: i32,
}

/// What is shipped: its weight and the value of its goods (after the coupon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parcel {
    pub weight_grams: i64,
    pub value_cents: i64,
    /// A free-shipping coupon applies.
    pub free_shipping_coupon: bool,
}

/// A method's price for a parcel to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub method: String,
    pub name: String,
    pub cents: i64,
    pub min_days: i32,
    pub max_days: i32,
    /// Free by the threshold or a coupon (the rate before that is `cents` = 0).
    pub free: bool,
}

/// Why a parcel cannot be shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unshippable {
    /// The address names no country we ship to (country code, or the address's text).
    Country(String),
    /// The method does not serve the destination (method, country).
    Method(String, String),
}

/// A method code as requested: '' is the default; else lower case letters, digits and `_`.
pub fn method_code(requested: &str) -> Result<String, Violations> {
    let code = requested.trim().to_lowercase();
    if code.is_empty() {
        return Ok(DEFAULT_METHOD.to_owned());
    }
    if code.len() > 32
        || !code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Violations::one(
            "shippingMethod",
            "must be a shipping method code, e.g. standard",
        ));
    }
    Ok(code)
}

/// The price of shipping `parcel` to `to` with `method`, given the rates of the destination's
/// country (`rates`: any rows, those of other methods or countries are ignored), free from
/// `free_threshold_cents` for methods that allow it.
pub fn quote(
    method: &ShippingMethod,
    rates: &[ZoneRate],
    to: &Destination,
    parcel: &Parcel,
    free_threshold_cents: i64,
) -> Result<Quote, Unshippable> {
    let Some(country) = to.country.as_deref() else {
        return Err(Unshippable::Country(String::new()));
    };
    let of_country = |state: &str| {
        rates
            .iter()
            .find(|r| r.method == method.code && r.country == country && r.state == state)
    };
    let rate = (!to.state.is_empty())
        .then(|| of_country(&to.state))
        .flatten()
        .or_else(|| of_country(""))
        .ok_or_else(|| Unshippable::Method(method.code.clone(), country.to_owned()))?;
    let above_first = (parcel.weight_grams - GRAMS_PER_KG).max(0);
    let extra_kg = (above_first + GRAMS_PER_KG - 1) / GRAMS_PER_KG;
    let free = method.free_over_threshold
        && (parcel.free_shipping_coupon || parcel.value_cents >= free_threshold_cents);
    Ok(Quote {
        method: method.code.clone(),
        name: method.name.clone(),
        cents: if free {
            0
        } else {
            rate.base_cents + rate.per_kg_cents * extra_kg
        },
        min_days: rate.min_days,
        max_days: rate.max_days,
        free,
    })
}

/// The quotes of every method serving `to`, in the methods' order; the country is
/// unshippable when none does.
pub fn quotes(
    methods: &[ShippingMethod],
    rates: &[ZoneRate],
    to: &Destination,
    parcel: &Parcel,
    free_threshold_cents: i64,
) -> Result<Vec<Quote>, Unshippable> {
    let quotes: Vec<Quote> = methods
        .iter()
        .filter_map(|m| quote(m, rates, to, parcel, free_threshold_cents).ok())
        .collect();
    if quotes.is_empty() {
        return Err(Unshippable::Country(to.country.clone().unwrap_or_default()));
    }
    Ok(quotes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const THRESHOLD: i64 = 10_000;

    fn method(code: &str, free: bool) -> ShippingMethod {
        ShippingMethod {
            code: code.into(),
            name: format!("{code} shipping"),
            free_over_threshold: free,
        }
    }

    fn rate(method: &str, country: &str, state: &str, base: i64, per_kg: i64) -> ZoneRate {
        ZoneRate {
            method: method.into(),
            country: country.into(),
            state: state.into(),
            base_cents: base,
            per_kg_cents: per_kg,
            min_days: 2,
            max_days: 4,
        }
    }

    fn rates() -> Vec<ZoneRate> {
        vec![
            rate("standard", "US", "", 999, 100),
            rate("standard", "US", "AK", 1999, 250),
            rate("express", "US", "", 1999, 200),
            rate("overnight", "US", "", 3999, 300),
            rate("standard", "GB", "", 1999, 300),
            rate("express", "GB", "", 3999, 500),
        ]
    }

    fn methods() -> Vec<ShippingMethod> {
        vec![
            method("standard", true),
            method("express", false),
            method("overnight", false),
        ]
    }

    fn parcel(weight_grams: i64, value_cents: i64) -> Parcel {
        Parcel {
            weight_grams,
            value_cents,
            free_shipping_coupon: false,
        }
    }

    fn us(state: &str) -> Destination {
        Destination::new("USA", state)
    }

    fn cents(m: &ShippingMethod, to: &Destination, p: Parcel) -> Result<i64, Unshippable> {
        quote(m, &rates(), to, &p, THRESHOLD).map(|q| q.cents)
    }

    #[test]
    fn the_base_rate_covers_the_first_kilogram_then_each_started_one_costs_more() {
        let standard = method("standard", true);
        for (grams, expected) in [
            (0, 999),
            (1, 999),
            (1000, 999),
            (1001, 1099),
            (2000, 1099),
            (2001, 1199),
            (10_500, 999 + 10 * 100),
            (-5, 999),
        ] {
            assert_eq!(
                cents(&standard, &us("NY"), parcel(grams, 5_000)),
                Ok(expected),
                "{grams} g"
            );
        }
    }

    #[test]
    fn a_state_row_wins_over_the_country_row() {
        let standard = method("standard", true);
        assert_eq!(
            cents(&standard, &us("AK"), parcel(2500, 0)),
            Ok(1999 + 2 * 250)
        );
        assert_eq!(cents(&standard, &us("ak"), parcel(0, 0)), Ok(1999));
        // A state without a row, or no state: the country's row.
        assert_eq!(cents(&standard, &us("NY"), parcel(0, 0)), Ok(999));
        assert_eq!(cents(&standard, &us(""), parcel(0, 0)), Ok(999));
        // Express has no Alaska row: the country's.
        assert_eq!(
            cents(&method("express", false), &us("AK"), parcel(0, 0)),
            Ok(1999)
        );
    }

    #[test]
    fn standard_is_free_from_the_threshold_or_with_a_coupon_express_never() {
        let standard = method("standard", true);
        let express = method("express", false);
        let heavy_at_threshold = parcel(5000, THRESHOLD);
        let q = quote(
            &standard,
            &rates(),
            &us("NY"),
            &heavy_at_threshold,
            THRESHOLD,
        )
        .unwrap();
        assert_eq!((q.cents, q.free), (0, true));
        assert_eq!(
            cents(&standard, &us("NY"), parcel(0, THRESHOLD - 1)),
            Ok(999)
        );
        assert_eq!(
            cents(&express, &us("NY"), heavy_at_threshold),
            Ok(1999 + 4 * 200)
        );
        let coupon = Parcel {
            free_shipping_coupon: true,
            ..parcel(0, 1)
        };
        assert_eq!(cents(&standard, &us("NY"), coupon), Ok(0));
        assert_eq!(cents(&express, &us("NY"), coupon), Ok(1999));
    }

    #[test]
    fn unserved_destinations_are_refused_by_country_or_by_method() {
        let overnight = method("overnight", false);
        assert_eq!(
            cents(&overnight, &Destination::new("UK", ""), parcel(0, 0)),
            Err(Unshippable::Method("overnight".into(), "GB".into()))
        );
        assert_eq!(
            cents(
                &method("standard", true),
                &Destination::new("Atlantis", ""),
                parcel(0, 0)
            ),
            Err(Unshippable::Country(String::new()))
        );
        assert_eq!(
            quotes(
                &methods(),
                &rates(),
                &Destination::new("KP", ""),
                &parcel(0, 0),
                THRESHOLD
            ),
            Err(Unshippable::Country("KP".into()))
        );
    }

    #[test]
    fn quotes_list_the_methods_serving_the_destination_in_order() {
        let gb = quotes(
            &methods(),
            &rates(),
            &Destination::new("United Kingdom", "LDN"),
            &parcel(1500, 2_000),
            THRESHOLD,
        )
        .unwrap();
        let got: Vec<(&str, i64)> = gb.iter().map(|q| (q.method.as_str(), q.cents)).collect();
        assert_eq!(got, [("standard", 1999 + 300), ("express", 3999 + 500)]);
        let us = quotes(&methods(), &rates(), &us("CA"), &parcel(0, 0), THRESHOLD).unwrap();
        assert_eq!(us.len(), 3);
    }

    #[test]
    fn method_codes_default_to_standard_and_are_checked() {
        assert_eq!(method_code("").unwrap(), "standard");
        assert_eq!(method_code(" Express ").unwrap(), "express");
        assert!(method_code("express!").is_err());
        assert!(method_code(&"a".repeat(33)).is_err());
    }
}
