//! The users service's domain types: profile patches, preferences and addresses, valid by
//! construction (one violation per bad field, named by its JSON name).

use crate::accounts::domain::{
    Email, PersonName, Phone, Username, Violations, parse_age, parse_gender,
};
use crate::proto::ecom::common::v1 as common;
use crate::proto::ecom::users::v1 as pb;

/// A partial profile update; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct ProfilePatch {
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub age: Option<i32>,
    pub gender: Option<String>,
    pub username: Option<Username>,
    /// Admins only (checked by the RPC, not here).
    pub role: Option<&'static str>,
}

/// The profile fields every update RPC carries.
pub struct ProfileFields<'a> {
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub age: Option<i32>,
    pub gender: Option<&'a str>,
    pub username: Option<&'a str>,
    pub role: Option<i32>,
}

impl ProfilePatch {
    /// Validates every present field.
    pub fn parse(f: ProfileFields<'_>) -> Result<ProfilePatch, Violations> {
        let mut v = Violations::default();
        let patch = ProfilePatch {
            first_name: f
                .first_name
                .and_then(|s| v.check("firstName", PersonName::parse(s))),
            last_name: f
                .last_name
                .and_then(|s| v.check("lastName", PersonName::parse(s))),
            email: f.email.and_then(|s| v.check("email", Email::parse(s))),
            phone: f.phone.and_then(|s| v.check("phone", Phone::parse(s))),
            age: f.age.and_then(|a| v.check("age", parse_age(a))),
            gender: f.gender.and_then(|s| v.check("gender", parse_gender(s))),
            username: f
                .username
                .and_then(|s| v.check("username", Username::parse(s))),
            role: match f.role.map(common::Role::try_from) {
                None => None,
                Some(Ok(common::Role::Admin)) => Some("admin"),
                Some(Ok(common::Role::User)) => Some("user"),
                Some(_) => {
                    v.push("role", "Must be user or admin");
                    None
                }
            },
        };
        v.finish(|| patch)
    }
}

/// ISO 4217 currency codes in use.
const CURRENCIES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL";

/// ISO 639-1 language codes.
const LANGUAGES: &str = "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu";

/// A user's preferences (GET and PUT /users/me/preferences).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    pub theme: &'static str,
    pub notifications: bool,
    pub email_notifications: bool,
    pub currency: String,
    pub language: String,
}

impl Default for Preferences {
    /// light, true, true, USD, en.
    fn default() -> Self {
        Preferences {
            theme: "light",
            notifications: true,
            email_notifications: true,
            currency: "USD".to_owned(),
            language: "en".to_owned(),
        }
    }
}

impl Preferences {
    /// `self` with a validated partial update applied.
    pub fn apply(mut self, r: &pb::UpdatePreferencesRequest) -> Result<Preferences, Violations> {
        let mut v = Violations::default();
        if let Some(theme) = r.theme {
            match pb::Theme::try_from(theme) {
                Ok(pb::Theme::Light) => self.theme = "light",
                Ok(pb::Theme::Dark) => self.theme = "dark",
                _ => v.push("theme", "Must be light or dark"),
            }
        }
        if let Some(n) = r.notifications {
            self.notifications = n;
        }
        if let Some(n) = r.email_notifications {
            self.email_notifications = n;
        }
        if let Some(c) = &r.currency {
            let c = c.trim().to_uppercase();
            if c.len() == 3 && CURRENCIES.split(' ').any(|x| x == c) {
                self.currency = c;
            } else {
                v.push("currency", "Must be an ISO 4217 currency code, e.g. USD");
            }
        }
        if let Some(l) = &r.language {
            let l = l.trim().to_lowercase();
            if l.len() == 2 && LANGUAGES.split(' ').any(|x| x == l) {
                self.language = l;
            } else {
                v.push("language", "Must be an ISO 639-1 language code, e.g. en");
            }
        }
        v.finish(|| self)
    }

    /// On the wire.
    pub fn to_wire(&self) -> pb::Preferences {
        pb::Preferences {
            theme: (if self.theme == "dark" {
                pb::Theme::Dark
            } else {
                pb::Theme::Light
            }) as i32,
            notifications: self.notifications,
            email_notifications: self.email_notifications,
            currency: self.currency.clone(),
            language: self.language.clone(),
        }
    }
}

/// Checks a required free-text field of `min..=max` characters.
fn text(v: &mut Violations, field: &str, s: &str, min: usize, max: usize) -> Option<String> {
    let s = s.trim();
    let len = s.chars().count();
    if len < min {
        v.push(
            field,
            if min == 1 {
                "Is required".to_owned()
            } else {
                format!("Must be at least {min} characters")
            },
        );
        None
    } else if len > max {
        v.push(field, format!("Must be at most {max} characters"));
        None
    } else if s.chars().any(char::is_control) {
        v.push(field, "Must not contain control characters");
        None
    } else {
        Some(s.to_owned())
    }
}

/// A postal code: 2 to 12 letters, digits, spaces or dashes.
fn zip(v: &mut Violations, s: &str) -> Option<String> {
    let s = s.trim();
    if (2..=12).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
    {
        Some(s.to_owned())
    } else {
        v.push(
            "zipCode",
            "Must be 2 to 12 letters, digits, spaces or dashes",
        );
        None
    }
}

/// The fields of an address, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressFields {
    pub label: String,
    pub first_name: String,
    pub last_name: String,
    pub address: String,
    pub city: String,
    pub state: String,
    pub zip_code: String,
    pub country: String,
    pub phone: String,
}

impl AddressFields {
    /// A new address from AddAddress.
    pub fn parse_new(r: &pb::AddAddressRequest) -> Result<AddressFields, Violations> {
        let mut v = Violations::default();
        let f = AddressFields {
            label: text(&mut v, "label", &r.label, 0, 50).unwrap_or_default(),
            first_name: v
                .check("firstName", PersonName::parse(&r.first_name))
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            last_name: v
                .check("lastName", PersonName::parse(&r.last_name))
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            address: text(&mut v, "address", &r.address, 3, 200).unwrap_or_default(),
            city: text(&mut v, "city", &r.city, 1, 100).unwrap_or_default(),
            state: text(&mut v, "state", &r.state, 0, 100).unwrap_or_default(),
            zip_code: zip(&mut v, &r.zip_code).unwrap_or_default(),
            country: text(&mut v, "country", &r.country, 2, 60).unwrap_or_default(),
            phone: v
                .check("phone", Phone::parse(&r.phone))
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
        };
        v.finish(|| f)
    }

    /// `self` with a validated partial update applied.
    pub fn apply(self, r: &pb::UpdateAddressRequest) -> Result<AddressFields, Violations> {
        let merged = pb::AddAddressRequest {
            label: r.label.clone().unwrap_or(self.label),
            first_name: r.first_name.clone().unwrap_or(self.first_name),
            last_name: r.last_name.clone().unwrap_or(self.last_name),
            address: r.address.clone().unwrap_or(self.address),
            city: r.city.clone().unwrap_or(self.city),
            state: r.state.clone().unwrap_or(self.state),
            zip_code: r.zip_code.clone().unwrap_or(self.zip_code),
            country: r.country.clone().unwrap_or(self.country),
            phone: r.phone.clone().unwrap_or(self.phone),
            is_default: false,
        };
        AddressFields::parse_new(&merged)
    }
}
