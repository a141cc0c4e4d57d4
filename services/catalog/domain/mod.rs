//! The catalog's domain types.
//!
//! Values here are valid by construction: the gRPC layer turns wire messages
//! into them (`NewProduct::try_from(CreateProductRequest)`), collecting one
//! violation per bad field, and code past that point never re-checks. The
//! read model ([`Product`], [`Review`]) comes from the database, which holds
//! only values that went through these types (and its own CHECKs).

mod cursor;
mod listing;
mod media;
mod product;
mod reservation;
mod review;
mod wire;

pub use wire::ListingRequest;

pub use cursor::{After, SortValue};
pub use listing::{Page, PriceRange, ProductFilter, ProductQuery, SortKey, SortOrder};
pub use media::{MediaPath, not_modified};
pub use product::{
    Brand, CategorySlug, Description, Dimensions, DiscountPercentage, ImageUrl, InfoText, Measure,
    MinimumOrderQuantity, NewProduct, Product, ProductExtras, ProductPatch, Review, Sku, Stock,
    Title, parse_images, parse_tags,
};
pub use reservation::{NewReservation, OrderKey, Reservation, ReservationState, pricing_ids};
pub use review::{
    NewReview, ProductSummary, ReviewEdit, WISHLIST_MAX_ITEMS, WishlistEntry, WishlistPage,
};

pub use crate::validation::Violations;

/// What a text with a control character is told.
const CONTROL: &str = "must not contain control characters";

/// Whether `text` holds a control character other than a line break or a tab: those belong in
/// a description or a review, the others in no catalog text, and PostgreSQL refuses NUL in
/// text (a 500 before this check).
fn has_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}
