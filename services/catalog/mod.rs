//! The catalog service: products, their categories, images and reviews (the
//! `/products` and `/media` routes), behind `ecom.catalog.v1.CatalogService`.
//!
//! It owns the `categories`, `products`, `product_images` and `reviews`
//! tables (migrations/20261127000100_catalog.sql), `wishlist_items` and
//! `catalog_purchases` (20261207000300_wishlist_reviews.sql; reviews and wishlists are
//! in `reviews.rs`) and the `catalog:*` cache keys; no other service reads them, they call this API. Reads are
//! cache-aside (a product for 300 s, the category list for 3600 s, a listing
//! page for 30 s; `app.rs`) and every admin write deletes the keys it affects after its
//! transaction commits. It never hard-deletes a product: orders keep
//! pointing at deleted ones.

mod app;
mod domain;
mod encoded;
mod error;
mod grpc;
mod pictures;
pub mod reservations;
mod reviews;
mod search_index;
pub mod seed;
mod store;
mod wire;

pub use encoded::CatalogServer;
pub use error::CatalogError;
pub use grpc::{CatalogConfig, CatalogService};
pub use reviews::PurchasesConsumer;
pub use search_index::SearchIndex;
pub use seed::seed_demo_catalog;

/// The cache key of one product: read and filled by the catalog's reads, deleted by its
/// writes and by the stock reservations that change a product's stock.
fn product_key(id: i64) -> String {
    format!("catalog:product:{id}")
}
