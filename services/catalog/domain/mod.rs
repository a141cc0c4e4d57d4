//! The catalog's domain types.
//!
//! Values here are valid by construction: the gRPC layer turns wire messages
//! into them (`NewProduct::try_from(CreateProductRequest)`), collecting one
//! violation per bad field, and code past that point never re-checks. The
//! read model ([`Product`], [`Review`]) comes from the database, which holds
//! only values that went through these types (and its own CHECKs).

mod listing;
mod media;
mod product;
mod wire;

pub use listing::{Page, PriceRange, ProductFilter, ProductQuery, SortKey, SortOrder};
pub use media::MediaPath;
pub use product::{
    Brand, CategorySlug, Description, Dimensions, DiscountPercentage, ImageUrl, InfoText, Measure,
    MinimumOrderQuantity, NewProduct, Product, ProductExtras, ProductPatch, Review, Sku, Stock,
    Title, parse_images, parse_tags,
};

/// Field-level validation failures, keyed by the JSON field name (`price`,
/// `images[2]`), in the order they were found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    /// Records a failure of `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    /// Keeps the value of a successful parse, records the failure otherwise.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(message) => {
                self.push(field, message);
                None
            }
        }
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing failed, the violations otherwise.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Violations> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }

    /// The `(field, message)` pairs, for `errors::validation`.
    pub fn into_inner(self) -> Vec<(String, String)> {
        self.0
    }

    /// The pairs, borrowed.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.0
    }
}

impl From<(&str, &str)> for Violations {
    fn from((field, message): (&str, &str)) -> Self {
        Violations(vec![(field.to_owned(), message.to_owned())])
    }
}
