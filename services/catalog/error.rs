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
            CatalogError::MediaNotFound => {
                errors::status(Code::NotFound, ErrorReason::NotFound, "File not found")
            }
            CatalogError::Invalid(violations) => errors::validation(violations.into_inner()),
            CatalogError::UnknownCategory(slug) => errors::validation(vec![(
                "category".to_owned(),
                format!("unknown category `{slug}`"),
            )]),
            CatalogError::Unexpected(err) => errors::unexpected(err),
        }
    }
}
