//! How the catalog fails, and what each failure looks like on the wire.

use tonic::{Code, Status};

use super::domain::Violations;
use crate::errors;
use crate::proto::ecom::common::v1::ErrorReason;

/// Everything a catalog RPC can fail with. Each variant's doc names the
/// status it becomes; the conversion is [`From<CatalogError> for Status`].
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// NOT_FOUND (404), reason PRODUCT_NOT_FOUND; also for soft-deleted
    /// products.
    #[error("product {0} not found")]
    ProductNotFound(i64),
    /// NOT_FOUND (404), reason PRODUCT_NOT_FOUND, message and
    /// `details.productIds` naming the products (comma-separated): a
    /// reservation of products that do not exist or are deleted.
    #[error("products {0:?} not found")]
    ProductsNotFound(Vec<i64>),
    /// FAILED_PRECONDITION, answered 422 (`http_status` metadata), reason
    /// INSUFFICIENT_STOCK, message and `details.productIds` naming the
    /// products with fewer units left than the reservation asks for.
    #[error("insufficient stock for products {0:?}")]
    InsufficientStock(Vec<i64>),
    /// NOT_FOUND (404), reason NOT_FOUND: no picture at that media path (or a path that
    /// tries to leave the media store, which is answered the same).
    #[error("media not found")]
    MediaNotFound,
    /// INVALID_ARGUMENT (400), reason VALIDATION_ERROR, one field violation
    /// per bad field.
    #[error("invalid request: {0:?}")]
    Invalid(Violations),
    /// INVALID_ARGUMENT (400), reason VALIDATION_ERROR, with the violation
    /// on `category`: a product must belong to an existing category.
    #[error("category `{0}` does not exist")]
    UnknownCategory(String),
    /// NOT_FOUND (404), reason REVIEW_NOT_FOUND: no such review, or another user's (so
    /// ids cannot be probed).
    #[error("review {0} not found")]
    ReviewNotFound(i64),
    /// ALREADY_EXISTS (409), reason REVIEW_EXISTS: the user has reviewed the product.
    #[error("the user has reviewed product {0} already")]
    ReviewExists(i64),
    /// NOT_FOUND (404), reason WISHLIST_ITEM_NOT_FOUND: the product is not in the
    /// caller's wishlist.
    #[error("product {0} is not in the wishlist")]
    WishlistItemNotFound(i64),
    /// FAILED_PRECONDITION answered 422, reason WISHLIST_FULL, `details.maxItems`.
    #[error("the wishlist holds {0} products already")]
    WishlistFull(i64),
    /// INTERNAL (500), reason INTERNAL_ERROR; the cause chain is logged once
    /// and the client gets a generic message. UNAVAILABLE (503) instead when
    /// the cause is an unreachable database, so that clients retry.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl CatalogError {
    /// Maps a failed write: a constraint that validation should have caught
    /// but a concurrent write tripped (the category deleted meanwhile)
    /// becomes a client error by its name, anything else is unexpected.
    pub fn from_write(err: sqlx::Error, category: Option<&str>, context: &'static str) -> Self {
        let constraint = err.as_database_error().and_then(|e| e.constraint());
        match (constraint, category) {
            (Some("products_category_id_fkey"), Some(slug)) => {
                CatalogError::UnknownCategory(slug.to_owned())
            }
            (Some("products_sku_key"), _) => {
                CatalogError::Invalid(Violations::one("sku", "is already used by another product"))
            }
            _ => CatalogError::Unexpected(anyhow::Error::new(err).context(context)),
        }
    }
}

impl From<Violations> for CatalogError {
    fn from(violations: Violations) -> Self {
        CatalogError::Invalid(violations)
    }
}

impl From<CatalogError> for Status {
    fn from(err: CatalogError) -> Status {
        match err {
            CatalogError::ProductNotFound(_) => errors::status(
                Code::NotFound,
                ErrorReason::ProductNotFound,
                "Product not found",
            ),
            CatalogError::ProductsNotFound(ids) => errors::products_not_found(&ids),
            CatalogError::InsufficientStock(ids) => {
                let list = id_list(&ids);
                errors::status_with_http_details(
                    Code::FailedPrecondition,
                    ErrorReason::InsufficientStock,
                    422,
                    format!("Insufficient stock for product(s) {list}"),
                    [("productIds", list)],
                )
            }
            CatalogError::MediaNotFound => {
                errors::status(Code::NotFound, ErrorReason::NotFound, "File not found")
            }
            CatalogError::Invalid(violations) => errors::validation(violations.into_inner()),
            CatalogError::UnknownCategory(slug) => errors::validation(vec![(
                "category".to_owned(),
                format!("unknown category `{slug}`"),
            )]),
            CatalogError::ReviewNotFound(_) => errors::status(
                Code::NotFound,
                ErrorReason::ReviewNotFound,
                "Review not found",
            ),
            CatalogError::ReviewExists(_) => errors::status_with_http(
                Code::AlreadyExists,
                ErrorReason::ReviewExists,
                409,
                "You have already reviewed this product; edit your review instead",
            ),
            CatalogError::WishlistItemNotFound(_) => errors::status(
                Code::NotFound,
                ErrorReason::WishlistItemNotFound,
                "Product not in the wishlist",
            ),
            CatalogError::WishlistFull(max) => errors::status_with_http_details(
                Code::FailedPrecondition,
                ErrorReason::WishlistFull,
                422,
                format!("The wishlist holds at most {max} products; remove some first"),
                [("maxItems", max.to_string())],
            ),
            CatalogError::Unexpected(err) => errors::unexpected(err),
        }
    }
}

/// Product ids as the messages and `details.productIds` list them: `3,7,12`.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::StatusExt as _;

    use super::*;

    fn metadata(status: &Status) -> HashMap<String, String> {
        status
            .get_details_error_info()
            .expect("an ErrorInfo")
            .metadata
    }

    #[test]
    fn insufficient_stock_is_422_naming_the_products() {
        let status = Status::from(CatalogError::InsufficientStock(vec![3, 12]));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "Insufficient stock for product(s) 3,12");
        let info = status.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, "INSUFFICIENT_STOCK");
        assert_eq!(
            metadata(&status),
            HashMap::from([
                (errors::HTTP_STATUS.to_owned(), "422".to_owned()),
                ("productIds".to_owned(), "3,12".to_owned()),
            ])
        );
    }

    #[test]
    fn unknown_products_are_404_naming_them() {
        let status = Status::from(CatalogError::ProductsNotFound(vec![7]));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "Product(s) not found: 7");
        let info = status.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, "PRODUCT_NOT_FOUND");
        assert_eq!(
            metadata(&status),
            HashMap::from([("productIds".to_owned(), "7".to_owned())])
        );
    }
}
