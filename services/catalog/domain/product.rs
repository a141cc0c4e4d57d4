//! A product's fields as validated values (the rules POST /products/add checks), the
//! shapes of a create and a partial update, and the read model.

use chrono::{DateTime, NaiveDate, Utc};

use super::{CONTROL, has_control};
use crate::money;

/// At most this many gallery images per product.
pub const MAX_IMAGES: usize = 20;

/// A product title: 3 to 200 characters once trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// Trims and checks the length.
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded_text(raw, 3, 200).map(Title)
    }

    /// The title text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product description: 10 to 5000 characters once trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    /// Trims and checks the length.
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded_text(raw, 10, 5000).map(Description)
    }

    /// The description text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A brand name: required, at most 100 characters once trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand(String);

impl Brand {
    /// Trims and checks the length.
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded_text(raw, 1, 100).map(Brand)
    }

    /// The brand name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A selling price in cents: greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(i64);

impl Price {
    /// From the wire's currency units (`99.99`), at most 2 decimals.
    pub fn from_wire(value: f64) -> Result<Self, String> {
        let cents = money::from_wire(value).map_err(|e| e.to_string())?;
        Self::from_cents(cents)
    }

    /// From cents, which must be positive.
    pub fn from_cents(cents: i64) -> Result<Self, String> {
        if cents > 0 {
            Ok(Price(cents))
        } else {
            Err("must be greater than 0".to_owned())
        }
    }

    /// The price in cents.
    pub fn cents(self) -> i64 {
        self.0
    }
}

/// A discount in percent, 0 to 100, kept to 2 decimals like the column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiscountPercentage(f64);

impl DiscountPercentage {
    /// No discount.
    pub const NONE: DiscountPercentage = DiscountPercentage(0.0);

    /// Checks the range; rounds to 2 decimals (the column is NUMERIC(5,2)).
    pub fn parse(value: f64) -> Result<Self, String> {
        if !value.is_finite() || !(0.0..=100.0).contains(&value) {
            return Err("must be between 0 and 100".to_owned());
        }
        Ok(DiscountPercentage((value * 100.0).round() / 100.0))
    }

    /// The percentage.
    pub fn value(self) -> f64 {
        self.0
    }
}

/// Units in stock: zero or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock(i32);

impl Stock {
    /// Checks the sign and the range of the column (INTEGER).
    pub fn parse(value: i64) -> Result<Self, String> {
        if value < 0 {
            return Err("must be 0 or more".to_owned());
        }
        i32::try_from(value)
            .map(Stock)
            .map_err(|_| format!("must be at most {}", i32::MAX))
    }

    /// The number of units.
    pub fn units(self) -> i32 {
        self.0
    }
}

/// An absolute http(s) URL of an image, at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUrl(String);

impl ImageUrl {
    /// Parses with `http::Uri` and requires an http(s) scheme and a host.
    pub fn parse(raw: &str) -> Result<Self, String> {
        const INVALID: &str = "must be a valid http(s) URL";
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is required".to_owned());
        }
        if raw.len() > 2048 {
            return Err("must be at most 2048 characters".to_owned());
        }
        let uri: http::Uri = raw.parse().map_err(|_| INVALID.to_owned())?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        let host_ok = uri.host().is_some_and(|host| !host.is_empty());
        if scheme_ok && host_ok {
            Ok(ImageUrl(raw.to_owned()))
        } else {
            Err(INVALID.to_owned())
        }
    }

    /// The URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A category's slug (`home-decoration`): lower-case words joined by `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategorySlug(String);

impl CategorySlug {
    /// Trims, lower-cases, and checks the shape the `categories` table holds.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let slug = raw.trim().to_lowercase();
        if slug.is_empty() {
            return Err("is required".to_owned());
        }
        let well_formed = slug.len() <= 100
            && slug
                .split('-')
                .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric()));
        if well_formed {
            Ok(CategorySlug(slug))
        } else {
            Err("must be a category slug such as `home-decoration`".to_owned())
        }
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stock keeping unit: 1 to 64 letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    /// Trims and checks the alphabet and the length.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let sku = raw.trim();
        let ok = (1..=64).contains(&sku.len())
            && sku
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Sku(sku.to_owned()))
        } else {
            Err("must be 1 to 64 letters, digits, '-', '_' or '.'".to_owned())
        }
    }

    /// The SKU text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// At most this many tags per product.
pub const MAX_TAGS: usize = 20;

/// Parses free-form tags: at most [`MAX_TAGS`], each 1 to 50 characters,
/// trimmed and lower-cased, duplicates dropped.
pub fn parse_tags(raw: &[String]) -> Result<Vec<String>, String> {
    if raw.len() > MAX_TAGS {
        return Err(format!("must have at most {MAX_TAGS} entries"));
    }
    let mut tags: Vec<String> = Vec::with_capacity(raw.len());
    for tag in raw {
        let tag = bounded_text(tag, 1, 50)
            .map_err(|_| "entries must be 1 to 50 characters".to_owned())?;
        let tag = tag.to_lowercase();
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// A physical measure (weight, a side of the package): finite, 0 or more,
/// at most 999999.99 (the columns are NUMERIC(8,2)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure(f64);

impl Measure {
    /// Checks the range; rounds to 2 decimals like the column.
    pub fn parse(value: f64) -> Result<Self, String> {
        if value.is_finite() && (0.0..=999_999.99).contains(&value) {
            Ok(Measure((value * 100.0).round() / 100.0))
        } else {
            Err("must be between 0 and 999999.99".to_owned())
        }
    }

    /// The measure.
    pub fn value(self) -> f64 {
        self.0
    }
}

/// A package's width, height and depth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dimensions {
    pub width: Measure,
    pub height: Measure,
    pub depth: Measure,
}

/// A short free text (warranty, shipping, return policy): at most 500
/// characters once trimmed; empty clears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoText(String);

impl InfoText {
    /// Trims and checks the length.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let text = raw.trim();
        if text.chars().count() > 500 {
            Err("must be at most 500 characters".to_owned())
        } else if has_control(text) {
            Err(CONTROL.to_owned())
        } else {
            Ok(InfoText(text.to_owned()))
        }
    }

    /// The text; empty means "none".
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The fewest units one order may contain: 1 or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinimumOrderQuantity(i32);

impl MinimumOrderQuantity {
    /// Checks the sign.
    pub fn parse(value: i32) -> Result<Self, String> {
        if value >= 1 {
            Ok(MinimumOrderQuantity(value))
        } else {
            Err("must be 1 or more".to_owned())
        }
    }

    /// The number of units.
    pub fn units(self) -> i32 {
        self.0
    }
}

/// The optional DummyJSON-style details of a product. In a create, `None`
/// means "not given"; in an update, "unchanged".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductExtras {
    pub sku: Option<Sku>,
    pub tags: Option<Vec<String>>,
    pub weight: Option<Measure>,
    pub dimensions: Option<Dimensions>,
    pub warranty_information: Option<InfoText>,
    pub shipping_information: Option<InfoText>,
    pub return_policy: Option<InfoText>,
    pub minimum_order_quantity: Option<MinimumOrderQuantity>,
}

/// A product to create (POST /products/add), every field valid.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProduct {
    pub title: Title,
    pub description: Description,
    pub price: Price,
    pub discount_percentage: DiscountPercentage,
    pub thumbnail: ImageUrl,
    pub images: Vec<ImageUrl>,
    pub category: CategorySlug,
    pub brand: Brand,
    pub stock: Stock,
    pub extras: ProductExtras,
}

/// A partial update (PUT or PATCH /products/{id}): `None` leaves the field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductPatch {
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub price: Option<Price>,
    pub discount_percentage: Option<DiscountPercentage>,
    pub thumbnail: Option<ImageUrl>,
    /// `Some` replaces the whole gallery.
    pub images: Option<Vec<ImageUrl>>,
    pub category: Option<CategorySlug>,
    pub brand: Option<Brand>,
    pub stock: Option<Stock>,
    pub extras: ProductExtras,
}

/// Parses a gallery: at most [`MAX_IMAGES`] URLs, each reported as
/// `images[i]` when invalid.
pub fn parse_images(raw: &[String], violations: &mut super::Violations) -> Option<Vec<ImageUrl>> {
    if raw.len() > MAX_IMAGES {
        violations.push("images", format!("must have at most {MAX_IMAGES} entries"));
        return None;
    }
    let mut images = Vec::with_capacity(raw.len());
    let mut ok = true;
    for (i, url) in raw.iter().enumerate() {
        match ImageUrl::parse(url) {
            Ok(url) => images.push(url),
            Err(message) => {
                violations.push("images", format!("entry {i}: {message}"));
                ok = false;
            }
        }
    }
    ok.then_some(images)
}

/// A product as the catalog shows it, with its gallery and reviews.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub price_cents: i64,
    pub discount_percentage: f64,
    pub thumbnail: String,
    pub images: Vec<String>,
    pub category: String,
    pub brand: Option<String>,
    pub rating: f64,
    pub stock: i32,
    pub sku: Option<String>,
    pub tags: Vec<String>,
    pub weight: Option<f64>,
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub depth: Option<f64>,
    pub warranty_information: Option<String>,
    pub shipping_information: Option<String>,
    pub availability_status: String,
    pub return_policy: Option<String>,
    pub minimum_order_quantity: i32,
    pub barcode: Option<String>,
    pub qr_code: Option<String>,
    pub reviews: Vec<Review>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set once the product is soft-deleted.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A customer review of a product.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub id: i64,
    pub product_id: i64,
    /// 1 to 5.
    pub rating: i16,
    pub comment: String,
    pub date: NaiveDate,
    pub reviewer_name: String,
    pub reviewer_email: String,
    /// The author had a delivered order with the product.
    pub verified_purchase: bool,
}

fn bounded_text(raw: &str, min: usize, max: usize) -> Result<String, String> {
    let text = raw.trim();
    let len = text.chars().count();
    if len == 0 {
        Err("is required".to_owned())
    } else if len < min || len > max {
        Err(format!("must be between {min} and {max} characters"))
    } else if has_control(text) {
        Err(CONTROL.to_owned())
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::domain::Violations;

    #[test]
    fn title_is_trimmed_and_bounded() {
        assert_eq!(Title::parse("  Phone ").unwrap().as_str(), "Phone");
        assert!(Title::parse("Pho\u{0}ne").is_err());
        assert!(Brand::parse("Br\u{1b}and").is_err());
        assert!(InfoText::parse("1 year\u{0}").is_err());
        assert!(Description::parse("Two lines:\n\tindented").is_ok());
        assert!(Title::parse("ab").is_err());
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"x".repeat(200)).is_ok());
        assert!(Title::parse(&"x".repeat(201)).is_err());
        // Characters, not bytes.
        assert!(Title::parse("äöü").is_ok());
    }

    #[test]
    fn description_is_bounded() {
        assert!(Description::parse("too short").is_err());
        assert!(Description::parse("long enough").is_ok());
        assert!(Description::parse(&"x".repeat(5001)).is_err());
    }

    #[test]
    fn brand_is_required() {
        assert_eq!(Brand::parse(""), Err("is required".to_owned()));
        assert_eq!(Brand::parse(" Apple ").unwrap().as_str(), "Apple");
    }

    #[test]
    fn price_is_positive_with_two_decimals() {
        assert_eq!(Price::from_wire(99.99).unwrap().cents(), 9999);
        assert!(Price::from_wire(0.0).is_err());
        assert!(Price::from_wire(-1.0).is_err());
        assert!(Price::from_wire(9.999).is_err());
        assert!(Price::from_wire(f64::NAN).is_err());
    }

    #[test]
    fn discount_is_a_percentage() {
        assert_eq!(DiscountPercentage::parse(0.0).unwrap().value(), 0.0);
        assert_eq!(DiscountPercentage::parse(100.0).unwrap().value(), 100.0);
        assert_eq!(DiscountPercentage::parse(12.345).unwrap().value(), 12.35);
        assert!(DiscountPercentage::parse(-0.5).is_err());
        assert!(DiscountPercentage::parse(100.01).is_err());
        assert!(DiscountPercentage::parse(f64::INFINITY).is_err());
    }

    #[test]
    fn stock_is_non_negative_and_fits_the_column() {
        assert_eq!(Stock::parse(0).unwrap().units(), 0);
        assert!(Stock::parse(-1).is_err());
        assert!(Stock::parse(i64::from(i32::MAX) + 1).is_err());
    }

    #[test]
    fn image_urls_must_be_http() {
        assert!(ImageUrl::parse("https://cdn.ecom.local/products/1/1.webp").is_ok());
        assert!(ImageUrl::parse("http://example.com/a.jpg").is_ok());
        for bad in [
            "",
            "not a url",
            "ftp://example.com/a.jpg",
            "/relative.jpg",
            "https://",
        ] {
            assert!(ImageUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn category_slugs_are_normalised() {
        assert_eq!(
            CategorySlug::parse(" Smartphones ").unwrap().as_str(),
            "smartphones"
        );
        assert!(CategorySlug::parse("home-decoration").is_ok());
        for bad in ["", "home decoration", "-tops", "tops-", "a--b", "shoes/1"] {
            assert!(CategorySlug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_gallery_reports_each_bad_entry() {
        let mut violations = Violations::default();
        let raw = vec!["https://a.example/1.jpg".to_owned(), "nope".to_owned()];
        assert_eq!(parse_images(&raw, &mut violations), None);
        assert_eq!(violations.as_slice().len(), 1);
        assert_eq!(violations.as_slice()[0].0, "images");

        let mut violations = Violations::default();
        let too_many = vec!["https://a.example/1.jpg".to_owned(); MAX_IMAGES + 1];
        assert_eq!(parse_images(&too_many, &mut violations), None);
        assert!(!violations.is_empty());
    }

    #[test]
    fn extras_are_checked() {
        assert!(Sku::parse("ABC-123_x.1").is_ok());
        assert!(Sku::parse("has space").is_err());
        assert!(Sku::parse("").is_err());
        assert_eq!(
            parse_tags(&[" Apple ".into(), "apple".into()]).unwrap(),
            ["apple"]
        );
        assert!(parse_tags(&["".into()]).is_err());
        assert!(parse_tags(&vec!["t".to_owned(); MAX_TAGS + 1]).is_err());
        assert_eq!(Measure::parse(1.234).unwrap().value(), 1.23);
        assert!(Measure::parse(-1.0).is_err());
        assert!(Measure::parse(f64::NAN).is_err());
        assert_eq!(InfoText::parse("  ").unwrap().as_str(), "");
        assert!(InfoText::parse(&"x".repeat(501)).is_err());
        assert!(MinimumOrderQuantity::parse(0).is_err());
        assert_eq!(MinimumOrderQuantity::parse(3).unwrap().units(), 3);
    }
}
