//! `CatalogService` over gRPC: convert the request into domain values,
//! authorize, call the store (through the cache for reads), convert back.

use std::time::Duration;

use anyhow::Context as _;
use prost::Message as _;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use super::domain::{MediaPath, NewProduct, Product, ProductPatch, ProductQuery, Review};
use super::error::CatalogError;
use super::product_key;
use super::reservations;
use super::store::{self, Visibility};
use crate::authn;
use crate::cache::Cache;
use crate::config::CategoriesFormat;
use crate::db::Database;
use crate::money;
use crate::proto::ecom::catalog::v1 as pb;
use crate::proto::google::api::HttpBody;
use tonic::metadata::MetadataValue;

/// How long a cached product stays (spec 12.2).
const PRODUCT_TTL: Duration = Duration::from_secs(300);
/// How long the cached category list stays (spec 12.2).
const CATEGORIES_TTL: Duration = Duration::from_secs(3600);
/// The cache key of the category list.
const CATEGORIES_KEY: &str = "catalog:categories";
/// When a write deletes its cache keys the second time (see `invalidate`).
const SECOND_INVALIDATION: Duration = Duration::from_millis(500);

/// How long a cached listing page (GET /products, /products/search, a category) stays.
/// Admin writes retire every cached page at once by moving to a new generation; the
/// stock shown in a page may lag the orders' reservations by up to this long (a product's
/// own page, and ordering, always see the exact stock).
const PAGE_TTL: Duration = Duration::from_secs(30);
/// The cache key of the current listing generation, and how long it is kept (far longer
/// than any page, so an expired generation can bring back no page).
const GENERATION_KEY: &str = "catalog:listing-generation";
const GENERATION_TTL: Duration = Duration::from_secs(86_400);

/// How long a served picture may be kept by browsers and CDNs (they revalidate by ETag).
const MEDIA_MAX_AGE: &str = "public, max-age=86400";
/// How long a picture stays in the cache.
const MEDIA_TTL: Duration = Duration::from_secs(3600);

/// A picture as the cache keeps it (protobuf, like every other cache entry).
#[derive(Clone, PartialEq, prost::Message)]
struct CachedMedia {
    #[prost(string, tag = "1")]
    content_type: String,
    #[prost(string, tag = "2")]
    etag: String,
    #[prost(bytes = "vec", tag = "3")]
    bytes: Vec<u8>,
}

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
}

impl CatalogConfig {
    /// The catalog's part of the settings.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        CatalogConfig {
            list_all_max: i64::from(settings.list_all_max),
            categories_format: settings.categories_format,
            media_base: settings.media_base(),
            api_url: settings.api_url(),
        }
    }
}

/// The catalog's gRPC service; cheap to clone.
#[derive(Clone)]
pub struct CatalogService {
    /// The primary: writes, and reads inside them.
    db: PgPool,
    /// Where reads that fill the cache go (a replica that has every catalog write, or the
    /// primary).
    replicas: Database,
    cache: Cache,
    config: std::sync::Arc<CatalogConfig>,
}

impl CatalogService {
    /// A service reading and writing `db`, caching in `cache`.
    pub fn new(db: Database, cache: Cache, config: CatalogConfig) -> Self {
        CatalogService {
            db: db.primary().clone(),
            replicas: db,
            cache,
            config: std::sync::Arc::new(config),
        }
    }

    /// The wire form of a product, its stored picture paths made absolute.
    fn to_wire(&self, product: Product) -> pb::Product {
        to_wire(product, &self.config.media_base)
    }

    /// A product for customers: from the cache, else from the database
    /// (then cached). Deleted products are not found.
    async fn live_product(&self, id: i64) -> Result<pb::Product, CatalogError> {
        let key = product_key(id);
        let bytes = self
            .cache
            .get_or_load(&key, PRODUCT_TTL, || async {
                let pool = self.replicas.reads().await;
                let mut conn = pool.acquire().await.context("acquiring a connection")?;
                let product = store::find_product(&mut conn, id, Visibility::Live)
                    .await?
                    .ok_or(CatalogError::ProductNotFound(id))?;
                Ok::<_, CatalogError>(self.to_wire(product).encode_to_vec().into())
            })
            .await?;
        self.decode_cached(&key, bytes).await
    }

    /// A page of products and the total, converted: from the cache, else from the database
    /// (then cached). On a large catalog the exact total and the ranking of a search cost
    /// a scan of every match, so repeated pages come from the cache.
    async fn page(&self, query: &ProductQuery) -> Result<pb::ListProductsResponse, CatalogError> {
        let key = self.page_key(query).await;
        let bytes = self
            .cache
            .get_or_load(&key, PAGE_TTL, || async {
                let pool = self.replicas.reads().await;
                let (products, total) = store::list_products(&pool, query).await?;
                let page = pb::ListProductsResponse {
                    limit: saturating_i32(query.page.reported_limit(products.len())),
                    products: products.into_iter().map(|p| self.to_wire(p)).collect(),
                    total: saturating_i32(total),
                    skip: saturating_i32(query.page.skip()),
                };
                Ok::<_, CatalogError>(page.encode_to_vec().into())
            })
            .await?;
        self.decode_cached(&key, bytes).await
    }

    /// A message from the cache (or just encoded for it). An entry that does not decode
    /// (corrupt, or written by an incompatible version) fails this one request and is
    /// deleted, so the next one loads afresh.
    async fn decode_cached<M: prost::Message + Default>(
        &self,
        key: &str,
        bytes: bytes::Bytes,
    ) -> Result<M, CatalogError> {
        match M::decode(bytes) {
            Ok(message) => Ok(message),
            Err(err) => {
                self.cache.delete(&[key.to_owned()]).await;
                Err(anyhow::Error::new(err)
                    .context(format!("decoding the cache entry {key}"))
                    .into())
            }
        }
    }

    /// The cache key of a listing page: the current generation and a digest of the query.
    /// Without a generation yet (none written, or the store unreachable) it is "0".
    async fn page_key(&self, query: &ProductQuery) -> String {
        use sha2::Digest as _;
        let generation = self.cache.get(GENERATION_KEY).await;
        let generation = generation
            .as_deref()
            .and_then(|g| std::str::from_utf8(g).ok())
            .unwrap_or("0");
        let digest = sha2::Sha256::digest(format!("{query:?}").as_bytes());
        format!("catalog:page:{generation}:{}", hex::encode(&digest[..16]))
    }

    /// Deletes cache keys after a committed write. A reader that loaded
    /// the old row just before the commit can still put it back after the
    /// first delete; the second delete, shortly after, closes that window,
    /// so no instance serves the old product for the whole TTL.
    async fn invalidate(&self, keys: Vec<String>) {
        // Every cached listing page at once: readers move to a new generation's keys. A
        // reader that read the old generation before this stores its page under that old
        // key, which nobody reads any more.
        let generation = uuid::Uuid::new_v4().simple().to_string();
        self.cache
            .set(GENERATION_KEY, generation.as_bytes(), GENERATION_TTL)
            .await;
        self.cache.delete(&keys).await;
        let cache = self.cache.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SECOND_INVALIDATION).await;
            cache.delete(&keys).await;
        });
    }
}

#[tonic::async_trait]
impl pb::catalog_service_server::CatalogService for CatalogService {
    /// Contract 5.2.1.
    #[tracing::instrument(skip_all)]
    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let query = ProductQuery::parse(request.get_ref(), self.config.list_all_max)
            .map_err(CatalogError::from)?;
        Ok(Response::new(self.page(&query).await?))
    }

    /// Contract 5.2.2: every category, alphabetically by slug, as slugs and as objects;
    /// `listing` is the form CATEGORIES_FORMAT picks for /products/categories. Cached.
    #[tracing::instrument(skip_all)]
    async fn list_categories(
        &self,
        _request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        if let Some(bytes) = self.cache.get(CATEGORIES_KEY).await
            && let Ok(cached) = pb::ListCategoriesResponse::decode(bytes)
        {
            return Ok(Response::new(cached));
        }
        let rows = store::categories(&self.replicas.reads().await)
            .await
            .map_err(CatalogError::from)?;
        let response = categories_to_wire(rows, &self.config);
        self.cache
            .set(CATEGORIES_KEY, &response.encode_to_vec(), CATEGORIES_TTL)
            .await;
        Ok(Response::new(response))
    }

    /// A product picture by path, with its ETag; 304 when the client has it already.
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
        let key = format!("catalog:media:{}", path.as_str());
        let bytes = self
            .cache
            .get_or_load(&key, MEDIA_TTL, || async {
                let media = store::find_media(&self.db, &path)
                    .await?
                    .ok_or(CatalogError::MediaNotFound)?;
                let cached = CachedMedia {
                    content_type: media.content_type,
                    etag: media.etag,
                    bytes: media.bytes,
                };
                Ok::<_, CatalogError>(cached.encode_to_vec().into())
            })
            .await?;
        let media: CachedMedia = self.decode_cached(&key, bytes).await?;
        let etag = format!("\"{}\"", media.etag);
        let fresh = if_none_match.is_some_and(|header| {
            header
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
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

    /// Contract 5.2.3: with images and reviews; 404 PRODUCT_NOT_FOUND.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let product = self.live_product(request.get_ref().id).await?;
        Ok(Response::new(pb::GetProductResponse {
            product: Some(product),
        }))
    }

    /// Contract 5.2.4: full text plus typo-tolerant title matches, best
    /// first; a blank `q` lists everything.
    #[tracing::instrument(skip_all, fields(q = %request.get_ref().q))]
    async fn search_products(
        &self,
        request: Request<pb::SearchProductsRequest>,
    ) -> Result<Response<pb::SearchProductsResponse>, Status> {
        let query = ProductQuery::parse(request.get_ref(), self.config.list_all_max)
            .map_err(CatalogError::from)?;
        let page = self.page(&query).await?;
        Ok(Response::new(pb::SearchProductsResponse {
            products: page.products,
            total: page.total,
            skip: page.skip,
            limit: page.limit,
        }))
    }

    /// Contract 5.2.5: an unknown category is an empty page.
    #[tracing::instrument(skip_all, fields(category = %request.get_ref().category))]
    async fn list_products_by_category(
        &self,
        request: Request<pb::ListProductsByCategoryRequest>,
    ) -> Result<Response<pb::ListProductsByCategoryResponse>, Status> {
        let query = ProductQuery::parse(request.get_ref(), self.config.list_all_max)
            .map_err(CatalogError::from)?;
        let page = self.page(&query).await?;
        Ok(Response::new(pb::ListProductsByCategoryResponse {
            products: page.products,
            total: page.total,
            skip: page.skip,
            limit: page.limit,
        }))
    }

    /// Contract 5.2.6, admin only: 201 (by the proto option) with the
    /// product; 400 with per-field details, including an unknown category.
    #[tracing::instrument(skip_all)]
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::CreateProductResponse>, Status> {
        let admin = authn::require_admin(&request)?.user_id;
        let new = NewProduct::try_from(request.into_inner()).map_err(CatalogError::from)?;
        let product = create(&self.db, &new).await?;
        tracing::info!(admin, product = product.id, "product created");
        // Nothing cached can hold the new id, but a racing read of it
        // (answered 404, never cached) costs nothing to rule out.
        self.invalidate(vec![product_key(product.id)]).await;
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(self.to_wire(product)),
        }))
    }

    /// Contract 5.2.7, admin only: changes the fields present; 404 if the
    /// product does not exist or is deleted.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::UpdateProductResponse>, Status> {
        let admin = authn::require_admin(&request)?.user_id;
        let id = request.get_ref().id;
        let patch = ProductPatch::try_from(request.get_ref()).map_err(CatalogError::from)?;
        let product = update(&self.db, id, &patch).await?;
        tracing::info!(admin, product = id, "product updated");
        self.invalidate(vec![product_key(id)]).await;
        Ok(Response::new(pb::UpdateProductResponse {
            product: Some(self.to_wire(product)),
        }))
    }

    /// Contract 5.2.8, admin only: soft delete; answers the product with
    /// `isDeleted: true` and `deletedOn`. It then reads 404 and leaves
    /// every listing.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn delete_product(
        &self,
        request: Request<pb::DeleteProductRequest>,
    ) -> Result<Response<pb::DeleteProductResponse>, Status> {
        let admin = authn::require_admin(&request)?.user_id;
        let id = request.get_ref().id;
        let product = soft_delete(&self.db, id).await?;
        tracing::info!(admin, product = id, "product deleted");
        self.invalidate(vec![product_key(id)]).await;
        Ok(Response::new(pb::DeleteProductResponse {
            product: Some(self.to_wire(product)),
        }))
    }

    // Internal stock reservation RPCs (commerce), admin only: see super::reservations.

    async fn reserve_stock(
        &self,
        request: Request<pb::ReserveStockRequest>,
    ) -> Result<Response<pb::ReserveStockResponse>, Status> {
        authn::require_admin(&request)?;
        let answer =
            reservations::reserve_stock(&self.db, &self.cache, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn commit_reservation(
        &self,
        request: Request<pb::CommitReservationRequest>,
    ) -> Result<Response<pb::CommitReservationResponse>, Status> {
        authn::require_admin(&request)?;
        let answer = reservations::commit_reservation(&self.db, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
        authn::require_admin(&request)?;
        let answer =
            reservations::release_reservation(&self.db, &self.cache, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn get_products_for_pricing(
        &self,
        request: Request<pb::GetProductsForPricingRequest>,
    ) -> Result<Response<pb::GetProductsForPricingResponse>, Status> {
        authn::require_admin(&request)?;
        let answer = reservations::get_products_for_pricing(&self.db, request.into_inner()).await?;
        Ok(Response::new(answer))
    }
}

/// Inserts the product and its gallery in one transaction.
async fn create(db: &PgPool, new: &NewProduct) -> Result<Product, CatalogError> {
    let slug = new.category.as_str();
    let mut tx = db.begin().await.context("starting a transaction")?;
    let category_id = store::category_id(&mut *tx, &new.category)
        .await?
        .ok_or_else(|| CatalogError::UnknownCategory(slug.to_owned()))?;
    let id = store::insert_product(&mut *tx, new, category_id)
        .await
        .map_err(|e| CatalogError::from_write(e, Some(slug), "inserting a product"))?;
    store::replace_images(&mut tx, id, &new.images)
        .await
        .context("writing the gallery of a new product")?;
    let product = store::find_product(&mut tx, id, Visibility::Live)
        .await?
        .context("reading back a new product")?;
    tx.commit().await.context("committing a new product")?;
    Ok(product)
}

/// Applies a patch (fields and, if given, the whole gallery) in one
/// transaction.
async fn update(db: &PgPool, id: i64, patch: &ProductPatch) -> Result<Product, CatalogError> {
    let slug = patch.category.as_ref().map(|c| c.as_str());
    let mut tx = db.begin().await.context("starting a transaction")?;
    let category_id = match &patch.category {
        None => None,
        Some(category) => Some(
            store::category_id(&mut *tx, category)
                .await?
                .ok_or_else(|| CatalogError::UnknownCategory(category.as_str().to_owned()))?,
        ),
    };
    let found = store::update_product(&mut *tx, id, patch, category_id)
        .await
        .map_err(|e| CatalogError::from_write(e, slug, "updating a product"))?;
    if !found {
        return Err(CatalogError::ProductNotFound(id));
    }
    if let Some(images) = &patch.images {
        store::replace_images(&mut tx, id, images)
            .await
            .context("replacing a product's gallery")?;
    }
    let product = store::find_product(&mut tx, id, Visibility::Live)
        .await?
        .context("reading back an updated product")?;
    tx.commit().await.context("committing a product update")?;
    Ok(product)
}

/// Marks the product deleted and reads it back, in one transaction.
async fn soft_delete(db: &PgPool, id: i64) -> Result<Product, CatalogError> {
    let mut tx = db.begin().await.context("starting a transaction")?;
    store::soft_delete_product(&mut *tx, id)
        .await
        .context("deleting a product")?
        .ok_or(CatalogError::ProductNotFound(id))?;
    let product = store::find_product(&mut tx, id, Visibility::IncludingDeleted)
        .await?
        .context("reading back a deleted product")?;
    tx.commit().await.context("committing a product deletion")?;
    Ok(product)
}

/// The categories in both wire forms, and the one CATEGORIES_FORMAT picks as `listing`.
fn categories_to_wire(
    rows: Vec<store::CategoryRow>,
    config: &CatalogConfig,
) -> pb::ListCategoriesResponse {
    use prost_types::{ListValue, Struct, Value, value::Kind};
    let objects: Vec<pb::Category> = rows
        .into_iter()
        .map(|row| pb::Category {
            url: format!("{}/products/category/{}", config.api_url, row.slug),
            slug: row.slug,
            name: row.name,
        })
        .collect();
    let text = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    };
    let values = objects
        .iter()
        .map(|c| match config.categories_format {
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
fn to_wire(product: Product, media_base: &str) -> pb::Product {
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
        reviews: product.reviews.into_iter().map(review_to_wire).collect(),
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

fn review_to_wire(review: Review) -> pb::Review {
    pb::Review {
        id: review.id,
        rating: review.rating.into(),
        comment: review.comment,
        date: review.date.format("%Y-%m-%d").to_string(),
        reviewer_name: review.reviewer_name,
        reviewer_email: review.reviewer_email,
    }
}

use crate::clock::timestamp;

fn saturating_i32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
