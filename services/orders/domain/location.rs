//! Where an order goes, as shipping and tax rates look it up: an ISO 3166-1 alpha-2
//! country and, where zones are finer (US states, Canadian provinces), a state code.
//!
//! Addresses are typed by people ("USA", "United Kingdom", "ny"): the common spellings of
//! the countries the shop serves are understood; any other two letters are taken as a code.

use super::order::Address;

/// A destination: country code and state code ('' when none or not a code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// ISO 3166-1 alpha-2, upper case; `None` when the address names no known country.
    pub country: Option<String>,
    /// Upper case, at most 3 letters or digits; '' otherwise.
    pub state: String,
}

/// Spellings of countries beside their codes (upper case, single spaces).
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("USA", "US"),
    ("U.S.", "US"),
    ("U.S.A.", "US"),
    ("UNITED STATES", "US"),
    ("UNITED STATES OF AMERICA", "US"),
    ("AMERICA", "US"),
    ("UK", "GB"),
    ("U.K.", "GB"),
    ("UNITED KINGDOM", "GB"),
    ("GREAT BRITAIN", "GB"),
    ("ENGLAND", "GB"),
    ("SCOTLAND", "GB"),
    ("WALES", "GB"),
    ("CANADA", "CA"),
    ("MEXICO", "MX"),
    ("GERMANY", "DE"),
    ("DEUTSCHLAND", "DE"),
    ("FRANCE", "FR"),
    ("ITALY", "IT"),
    ("SPAIN", "ES"),
    ("NETHERLANDS", "NL"),
    ("THE NETHERLANDS", "NL"),
    ("IRELAND", "IE"),
    ("AUSTRALIA", "AU"),
    ("JAPAN", "JP"),
];

/// The country code an address's country field names, if any.
pub fn country_code(country: &str) -> Option<String> {
    let upper = country
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    if let Some((_, code)) = COUNTRY_NAMES.iter().find(|(name, _)| *name == upper) {
        return Some((*code).to_owned());
    }
    // "UK" is the common spelling, "GB" the code; any other pair of letters is a code.
    (upper.len() == 2 && upper.bytes().all(|b| b.is_ascii_uppercase())).then_some(upper)
}

/// The state code of an address's state field: a short code as typed, else '' (the
/// country's own rate applies).
pub fn state_code(state: &str) -> String {
    let upper = state.trim().to_uppercase();
    if (1..=3).contains(&upper.len()) && upper.bytes().all(|b| b.is_ascii_alphanumeric()) {
        upper
    } else {
        String::new()
    }
}

impl Destination {
    pub fn new(country: &str, state: &str) -> Destination {
        Destination {
            country: country_code(country),
            state: state_code(state),
        }
    }

    pub fn of(address: &Address) -> Destination {
        Destination::new(&address.country, &address.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_understood_by_code_and_common_name() {
        assert_eq!(country_code("USA").as_deref(), Some("US"));
        assert_eq!(country_code(" united  states ").as_deref(), Some("US"));
        assert_eq!(country_code("us").as_deref(), Some("US"));
        assert_eq!(country_code("UK").as_deref(), Some("GB"));
        assert_eq!(country_code("Germany").as_deref(), Some("DE"));
        assert_eq!(country_code("KP").as_deref(), Some("KP"));
        assert_eq!(country_code("Atlantis"), None);
        assert_eq!(country_code(""), None);
        assert_eq!(country_code("U1"), None);
    }

    #[test]
    fn states_are_short_codes_or_nothing() {
        assert_eq!(state_code("ny"), "NY");
        assert_eq!(state_code(" CA "), "CA");
        assert_eq!(state_code("LDN"), "LDN");
        assert_eq!(state_code("New York"), "");
        assert_eq!(state_code(""), "");
    }
}
