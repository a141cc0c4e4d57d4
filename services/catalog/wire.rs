//! Domain values and store rows to the wire types of `ecom.catalog.v1`: the only
//! place the catalog encodes its answers (requests are decoded in `domain/wire.rs`).

use prost_types::{ListValue, Struct, Value, value::Kind};

use super::app::ProductPage;
use super::domain::{Product, Reservation, ReservationState, Review, WishlistEntry};
use super::reservations::Pricing;
use super::reviews::Wishlist;
use super::store::CategoryRow;
use crate::clock::timestamp;
use crate::config::CategoriesFormat;
use crate::money;
use crate::proto::ecom::catalog::v1 as pb;

/// A page of products. Every listing (all products, a search, a category) is cached in
/// this one form; the search and category RPCs copy its fields into their own answers.
pub fn page(page: ProductPage, media_base: &str) -> pb::ListProductsResponse {
    pb::ListProductsResponse {
        limit: saturating_i32(page.limit),
        products: page
            .products
            .into_iter()
            .map(|p| product(p, media_base))
            .collect(),
        total: saturating_i32(page.total),
        skip: saturating_i32(page.skip),
        next_cursor: page.next_cursor,
    }
}

/// The categories in both wire forms, and the one `format` picks as `listing`; a
/// category object's `url` is under `api_url`.
pub fn categories(
    rows: Vec<CategoryRow>,
    format: CategoriesFormat,
    api_url: &str,
) -> pb::ListCategoriesResponse {
    let objects: Vec<pb::Category> = rows
        .into_iter()
        .map(|row| pb::Category {
            url: format!("{api_url}/products/category/{}", row.slug),
            slug: row.slug,
            name: row.name,
        })
        .collect();
    let text = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    };
    let values = objects
        .iter()
        .map(|c| match format {
            CategoriesFormat::Names => text(&c.slug),
            CategoriesFormat::Objects => Value {
                kind: Some(Kind::StructValue(Struct {
                    fields: [("slug", &c.slug), ("name", &c.name), ("url", &c.url)]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), text(v)))
                        .collect(),
                })),
            },
        })
        .collect();
    pb::ListCategoriesResponse {
        categories: objects.iter().map(|c| c.slug.clone()).collect(),
        objects,
        listing: Some(ListValue { values }),
    }
}

/// A stored picture path made absolute: seeded pictures are stored as paths under the media
/// base (so PUBLIC_URL or CDN_URL may change without a reseed); admins give absolute URLs.
fn absolute(media_base: &str, url: String) -> String {
    if url.is_empty() || url.contains("://") {
        url
    } else {
        format!("{media_base}/{url}")
    }
}

/// The wire form of a product: money in currency units, times as
/// timestamps, absent details as defaults, picture paths as absolute URLs.
pub fn product(product: Product, media_base: &str) -> pb::Product {
    let dimensions = match (product.width, product.height, product.depth) {
        (None, None, None) => None,
        (width, height, depth) => Some(pb::Dimensions {
            width: width.unwrap_or_default(),
            height: height.unwrap_or_default(),
            depth: depth.unwrap_or_default(),
        }),
    };
    pb::Product {
        id: product.id,
        title: product.title,
        description: product.description,
        price: money::to_wire(product.price_cents),
        discount_percentage: product.discount_percentage,
        thumbnail: absolute(media_base, product.thumbnail),
        images: product
            .images
            .into_iter()
            .map(|url| absolute(media_base, url))
            .collect(),
        category: product.category,
        brand: product.brand,
        rating: product.rating,
        stock: product.stock,
        reviews: product.reviews.into_iter().map(review).collect(),
        sku: product.sku.unwrap_or_default(),
        tags: product.tags,
        weight: product.weight.unwrap_or_default(),
        dimensions,
        warranty_information: product.warranty_information.unwrap_or_default(),
        shipping_information: product.shipping_information.unwrap_or_default(),
        availability_status: product.availability_status,
        return_policy: product.return_policy.unwrap_or_default(),
        minimum_order_quantity: product.minimum_order_quantity,
        meta: Some(pb::ProductMeta {
            created_at: Some(timestamp(product.created_at)),
            updated_at: Some(timestamp(product.updated_at)),
            barcode: product.barcode.unwrap_or_default(),
            qr_code: product.qr_code.unwrap_or_default(),
        }),
        created_at: Some(timestamp(product.created_at)),
        updated_at: Some(timestamp(product.updated_at)),
        is_deleted: product.deleted_at.is_some(),
        deleted_on: product.deleted_at.map(timestamp),
    }
}

pub fn review(review: Review) -> pb::Review {
    pb::Review {
        id: review.id,
        product_id: review.product_id,
        verified_purchase: review.verified_purchase,
        rating: review.rating.into(),
        comment: review.comment,
        date: review.date.format("%Y-%m-%d").to_string(),
        reviewer_name: review.reviewer_name,
        reviewer_email: review.reviewer_email,
    }
}

/// A reservation's state as the proto enum value; no state is "unspecified".
pub fn reservation_state(state: Option<ReservationState>) -> i32 {
    let state = match state {
        Some(ReservationState::Reserved) => pb::ReservationState::Reserved,
        Some(ReservationState::Committed) => pb::ReservationState::Committed,
        Some(ReservationState::Released) => pb::ReservationState::Released,
        None => pb::ReservationState::Unspecified,
    };
    state as i32
}

/// The answer to ReserveStock.
pub fn reserved(reservation: Reservation) -> pb::ReserveStockResponse {
    pb::ReserveStockResponse {
        state: reservation_state(reservation.state),
        expires_at: reservation.expires_at.map(timestamp),
    }
}

/// The answer to GetProductsForPricing.
pub fn pricing(pricing: Pricing) -> pb::GetProductsForPricingResponse {
    pb::GetProductsForPricingResponse {
        products: pricing
            .products
            .into_iter()
            .map(|r| pb::PricedProduct {
                id: r.id,
                title: r.title,
                price_cents: r.price_cents,
                discount_basis_points: r.discount_basis_points,
                thumbnail: r.thumbnail,
                stock: r.stock,
                weight: r.weight,
                category: r.category,
            })
            .collect(),
        missing_ids: pricing.missing_ids,
    }
}

fn saturating_i32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A wishlist entry: its id is its product's id.
pub fn wishlist_item(entry: WishlistEntry, media_base: &str) -> pb::WishlistItem {
    let p = entry.product;
    pb::WishlistItem {
        id: p.id,
        product_id: p.id,
        added_at: Some(timestamp(entry.added_at)),
        product: Some(pb::WishlistProduct {
            id: p.id,
            title: p.title,
            price: money::to_wire(p.price_cents),
            discount_percentage: p.discount_percentage,
            thumbnail: absolute(media_base, p.thumbnail),
            stock: p.stock,
            availability_status: p.availability_status,
            rating: p.rating,
            category: p.category,
            brand: p.brand,
        }),
    }
}

/// A page of a wishlist.
pub fn wishlist(list: Wishlist, media_base: &str) -> pb::ListWishlistResponse {
    pb::ListWishlistResponse {
        items: list
            .entries
            .into_iter()
            .map(|e| wishlist_item(e, media_base))
            .collect(),
        total: list.total,
        skip: list.page.skip,
        limit: list.page.limit,
    }
}
