//! `CatalogService` over gRPC: decode the request into domain values, authorize,
//! call the use case ([`super::app`], [`super::reservations`]), encode the answer
//! ([`super::wire`]).

use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::app::CatalogApp;
use super::domain::{
    MediaPath, NewProduct, NewReservation, NewReview, OrderKey, ProductPatch, ProductQuery,
    ReviewEdit, WishlistPage, not_modified, pricing_ids,
};
use super::error::CatalogError;
use super::wire;
use crate::authn;
use crate::cache::Cache;
use crate::config::CategoriesFormat;
use crate::proto::ecom::catalog::v1 as pb;
use crate::proto::google::api::HttpBody;

/// How long a served picture may be kept by browsers and CDNs (they revalidate by ETag).
const MEDIA_MAX_AGE: &str = "public, max-age=86400";

/// The deployment's choices that shape the catalog's answers.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// Most products a `limit=0` page answers (LIST_ALL_MAX).
    pub list_all_max: i64,
    /// What GET /products/categories answers (CATEGORIES_FORMAT).
    pub categories_format: CategoriesFormat,
    /// The base URL of stored relative picture paths (CDN_URL, or ecom's own /media).
    pub media_base: String,
    /// The absolute URL of the REST API (a category object's `url` is under it).
    pub api_url: String,
    /// Stock at or below which a product's fall raises an inventory alert (LOW_STOCK_THRESHOLD).
    pub low_stock_threshold: i32,
}

impl CatalogConfig {
    /// The catalog's part of the settings.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        CatalogConfig {
            list_all_max: i64::from(settings.list_all_max),
            categories_format: settings.categories_format,
            media_base: settings.media_base(),
            api_url: settings.api_url(),
            low_stock_threshold: settings.low_stock_threshold,
        }
    }
}

/// The catalog's gRPC service; cheap to clone.
#[derive(Clone)]
pub struct CatalogService {
    app: CatalogApp,
    config: std::sync::Arc<CatalogConfig>,
}

impl CatalogService {
    /// A service reading and writing `db`, caching in `cache`.
    pub fn new(db: crate::db::Database, cache: Cache, config: CatalogConfig) -> Self {
        let mut app = CatalogApp::new(db, cache);
        app.low_stock_threshold = config.low_stock_threshold;
        CatalogService {
            app,
            config: std::sync::Arc::new(config),
        }
    }

    /// The same service answering searches from `index` (services/catalog/search_index.rs).
    pub fn with_search_index(mut self, index: super::SearchIndex) -> Self {
        self.app.search = Some(index);
        self
    }

    /// The same service dating reviews and wishlist entries by `clock` (tests set it).
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.app.clock = clock;
        self
    }

    /// GET /products/{id} as the encoded `GetProductResponse`: the cached product's protobuf
    /// bytes as they are, behind the one field tag that makes them that message, so that a
    /// cached read is not decoded and encoded again on every call.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    pub(super) async fn get_product_encoded(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<bytes::Bytes>, Status> {
        let product = self
            .app
            .product_bytes(request.get_ref().id, |p| self.product(p))
            .await?;
        Ok(Response::new(super::encoded::get_product_response(
            &product,
        )))
    }

    /// The wire form of a product, its stored picture paths made absolute.
    fn product(&self, product: super::domain::Product) -> pb::Product {
        wire::product(product, &self.config.media_base)
    }

    /// A listing (GET /products, /products/search, /products/category/{category}) as its
    /// encoded response: the cached page's bytes as they are, which are the encoding of each of
    /// the three responses (super::encoded).
    #[tracing::instrument(skip_all, fields(q, category))]
    pub(super) async fn page_encoded(
        &self,
        request: Request<impl super::domain::ListingRequest>,
    ) -> Result<Response<bytes::Bytes>, Status> {
        let query = ProductQuery::parse(request.get_ref(), self.config.list_all_max)
            .map_err(CatalogError::from)?;
        let span = tracing::Span::current();
        span.record("q", query.text.as_deref());
        span.record("category", query.filter.category.as_deref());
        let media_base = &self.config.media_base;
        let page = self
            .app
            .page_bytes(&query, |page| wire::page(page, media_base))
            .await?;
        Ok(Response::new(page))
    }

    /// [`CatalogService::page_encoded`] decoded as `M`, for a caller of the trait.
    async fn page<M: prost::Message + Default>(
        &self,
        request: Request<impl super::domain::ListingRequest>,
    ) -> Result<Response<M>, Status> {
        let (metadata, encoded, extensions) = self.page_encoded(request).await?.into_parts();
        let message = M::decode(encoded)
            .map_err(|e| Status::internal(format!("decoding a cached page: {e}")))?;
        Ok(Response::from_parts(metadata, message, extensions))
    }
}

#[tonic::async_trait]
impl pb::catalog_service_server::CatalogService for CatalogService {
    /// GET /products: a page of live products (skip, limit, `limit=0` for up to
    /// LIST_ALL_MAX), sorted and filtered, with the total. Cached for a short while.
    ///
    /// The gRPC server answers the three listings with [`CatalogService::page_encoded`] (see
    /// super::encoded); these are the same answers decoded, for a caller of the trait.
    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        self.page(request).await
    }

    /// GET /products/categories and /products/category-list: every category,
    /// alphabetically by slug, as slugs and as objects; `listing` is the form
    /// CATEGORIES_FORMAT picks for /products/categories. Cached.
    #[tracing::instrument(skip_all)]
    async fn list_categories(
        &self,
        _request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let config = &self.config;
        let answer = self
            .app
            .categories(|rows| wire::categories(rows, config.categories_format, &config.api_url))
            .await?;
        Ok(Response::new(answer))
    }

    /// GET /media/{path}: a product picture by path, with its ETag; 304 when the client
    /// has it already.
    #[tracing::instrument(skip_all)]
    async fn get_media(
        &self,
        request: Request<pb::GetMediaRequest>,
    ) -> Result<Response<HttpBody>, Status> {
        let if_none_match = request
            .metadata()
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let path = MediaPath::parse(&request.get_ref().path).ok_or(CatalogError::MediaNotFound)?;
        let media = self.app.media(&path).await?;
        let etag = format!("\"{}\"", media.etag);
        let fresh = not_modified(if_none_match.as_deref(), &etag);
        let body = HttpBody {
            content_type: media.content_type,
            data: if fresh { Vec::new() } else { media.bytes },
            extensions: Vec::new(),
        };
        let mut response = Response::new(body);
        let headers = response.metadata_mut();
        headers.insert(
            "etag",
            etag.parse().map_err(|_| CatalogError::MediaNotFound)?,
        );
        headers.insert("cache-control", MetadataValue::from_static(MEDIA_MAX_AGE));
        // Pictures are shown by storefronts on other origins (the edge's default is same-origin).
        headers.insert(
            "cross-origin-resource-policy",
            MetadataValue::from_static("cross-origin"),
        );
        if fresh {
            headers.insert("x-http-status", MetadataValue::from_static("304"));
        }
        Ok(response)
    }

    /// GET /products/{id}: a live product with its images and reviews; 404
    /// PRODUCT_NOT_FOUND (also for a deleted one). Cached.
    ///
    /// The gRPC server answers it with [`CatalogService::get_product_encoded`] (see
    /// super::encoded); this is the same answer decoded, for a caller of the trait.
    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let (metadata, encoded, extensions) = self.get_product_encoded(request).await?.into_parts();
        let message = prost::Message::decode(encoded)
            .map_err(|e| Status::internal(format!("decoding a cached product: {e}")))?;
        Ok(Response::from_parts(metadata, message, extensions))
    }

    /// GET /products/search?q=: full text plus typo-tolerant title matches, best
    /// first; a blank `q` lists everything.
    async fn search_products(
        &self,
        request: Request<pb::SearchProductsRequest>,
    ) -> Result<Response<pb::SearchProductsResponse>, Status> {
        self.page(request).await
    }

    /// GET /products/category/{category}: the category's page; an unknown category is
    /// an empty page, not an error.
    async fn list_products_by_category(
        &self,
        request: Request<pb::ListProductsByCategoryRequest>,
    ) -> Result<Response<pb::ListProductsByCategoryResponse>, Status> {
        self.page(request).await
    }

    /// POST /products/add, admin only: 201 (by the proto option) with the
    /// product; 400 with per-field details, including an unknown category.
    #[tracing::instrument(skip_all)]
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::CreateProductResponse>, Status> {
        let admin = authn::require_admin(&request)?.user_id;
        let new = NewProduct::try_from(request.into_inner()).map_err(CatalogError::from)?;
        let product = self.app.create_product(admin, &new).await?;
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(self.product(product)),
        }))
    }

    /// PUT or PATCH /products/{id}, admin only: changes the fields present; 404 if
    /// the product does not exist or is deleted.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::UpdateProductResponse>, Status> {
        let admin = authn::require_admin(&request)?.user_id;
        let id = request.get_ref().id;
        let patch = ProductPatch::try_from(request.get_ref()).map_err(CatalogError::from)?;
        let product = self.app.update_product(admin, id, &patch).await?;
        Ok(Response::new(pb::UpdateProductResponse {
            product: Some(self.product(product)),
        }))
    }

    /// DELETE /products/{id}, admin only: soft delete; answers the product with
    /// `isDeleted: true` and `deletedOn`. It then reads 404 and leaves
    /// every listing.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn delete_product(
        &self,
        request: Request<pb::DeleteProductRequest>,
    ) -> Result<Response<pb::DeleteProductResponse>, Status> {
        let admin = authn::require_admin(&request)?.user_id;
        let product = self.app.delete_product(admin, request.get_ref().id).await?;
        Ok(Response::new(pb::DeleteProductResponse {
            product: Some(self.product(product)),
        }))
    }

    // Internal stock reservation RPCs (commerce), admin only: see super::reservations.

    async fn reserve_stock(
        &self,
        request: Request<pb::ReserveStockRequest>,
    ) -> Result<Response<pb::ReserveStockResponse>, Status> {
        authn::require_admin(&request)?;
        let r = request.get_ref();
        let lines = r.lines.iter().map(|l| (l.product_id, l.quantity));
        let new = NewReservation::parse(&r.order_key, r.ttl_seconds, lines)
            .map_err(CatalogError::from)?;
        let reservation = self.app.reserve_stock(&new).await?;
        Ok(Response::new(wire::reserved(reservation)))
    }

    async fn commit_reservation(
        &self,
        request: Request<pb::CommitReservationRequest>,
    ) -> Result<Response<pb::CommitReservationResponse>, Status> {
        authn::require_admin(&request)?;
        let key = OrderKey::parse(&request.get_ref().order_key).map_err(CatalogError::from)?;
        let state = self.app.commit_reservation(&key).await?;
        Ok(Response::new(pb::CommitReservationResponse {
            state: wire::reservation_state(state),
        }))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
        authn::require_admin(&request)?;
        let key = OrderKey::parse(&request.get_ref().order_key).map_err(CatalogError::from)?;
        let state = self.app.release_reservation(&key).await?;
        Ok(Response::new(pb::ReleaseReservationResponse {
            state: wire::reservation_state(state),
        }))
    }

    async fn get_products_for_pricing(
        &self,
        request: Request<pb::GetProductsForPricingRequest>,
    ) -> Result<Response<pb::GetProductsForPricingResponse>, Status> {
        authn::require_admin(&request)?;
        let ids = pricing_ids(request.into_inner().ids).map_err(CatalogError::from)?;
        let pricing = self.app.products_for_pricing(ids).await?;
        Ok(Response::new(wire::pricing(pricing)))
    }

    // Wishlist and reviews: signed-in callers, own objects only (super::reviews).

    /// GET /wishlist: the caller's page, newest first.
    #[tracing::instrument(skip_all)]
    async fn list_wishlist(
        &self,
        request: Request<pb::ListWishlistRequest>,
    ) -> Result<Response<pb::ListWishlistResponse>, Status> {
        let user = authn::require_user(&request)?.user_id;
        let r = request.get_ref();
        let page = WishlistPage::parse(r.skip, r.limit).map_err(CatalogError::from)?;
        let list = self.app.wishlist(user, page).await?;
        Ok(Response::new(wire::wishlist(list, &self.config.media_base)))
    }

    /// POST /wishlist: 201 with the new entry, 200 with the one already there.
    #[tracing::instrument(skip_all, fields(product = request.get_ref().product_id))]
    async fn add_to_wishlist(
        &self,
        request: Request<pb::AddToWishlistRequest>,
    ) -> Result<Response<pb::AddToWishlistResponse>, Status> {
        let user = authn::require_user(&request)?.user_id;
        let (entry, added) = self
            .app
            .add_to_wishlist(user, request.get_ref().product_id)
            .await?;
        let mut response = Response::new(pb::AddToWishlistResponse {
            item: Some(wire::wishlist_item(entry, &self.config.media_base)),
        });
        if !added {
            // Adding again is not an error (Shopify's and Medusa's wishlists answer the
            // entry): the same entry, with 200 rather than the route's 201.
            response
                .metadata_mut()
                .insert("x-http-status", MetadataValue::from_static("200"));
        }
        Ok(response)
    }

    /// DELETE /wishlist/{id}: the removed entry (the house answers a delete with the object).
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn remove_from_wishlist(
        &self,
        request: Request<pb::RemoveFromWishlistRequest>,
    ) -> Result<Response<pb::RemoveFromWishlistResponse>, Status> {
        let user = authn::require_user(&request)?.user_id;
        let entry = self
            .app
            .remove_from_wishlist(user, request.get_ref().id)
            .await?;
        Ok(Response::new(pb::RemoveFromWishlistResponse {
            item: Some(wire::wishlist_item(entry, &self.config.media_base)),
        }))
    }

    /// POST /products/{productId}/reviews: 201 with the review.
    #[tracing::instrument(skip_all, fields(product = request.get_ref().product_id))]
    async fn create_review(
        &self,
        request: Request<pb::CreateReviewRequest>,
    ) -> Result<Response<pb::CreateReviewResponse>, Status> {
        let author = authn::require_user(&request)?;
        let r = request.get_ref();
        let new = NewReview::parse(r.rating, &r.comment).map_err(CatalogError::from)?;
        let review = self.app.create_review(author, r.product_id, &new).await?;
        Ok(Response::new(pb::CreateReviewResponse {
            review: Some(wire::review(review)),
        }))
    }

    /// PUT /reviews/{id}: the caller's own review, the fields present changed.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn update_review(
        &self,
        request: Request<pb::UpdateReviewRequest>,
    ) -> Result<Response<pb::UpdateReviewResponse>, Status> {
        let user = authn::require_user(&request)?.user_id;
        let r = request.get_ref();
        let edit = ReviewEdit::parse(r.rating, r.comment.as_deref()).map_err(CatalogError::from)?;
        let review = self.app.update_review(user, r.id, &edit).await?;
        Ok(Response::new(pb::UpdateReviewResponse {
            review: Some(wire::review(review)),
        }))
    }

    /// DELETE /reviews/{id}: the caller's own review, or any for an admin.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn delete_review(
        &self,
        request: Request<pb::DeleteReviewRequest>,
    ) -> Result<Response<pb::DeleteReviewResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let review = self.app.delete_review(caller, request.get_ref().id).await?;
        Ok(Response::new(pb::DeleteReviewResponse {
            review: Some(wire::review(review)),
        }))
    }
}
