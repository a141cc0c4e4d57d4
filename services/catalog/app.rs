//! The catalog's use cases: cache-aside reads of products, listing pages, categories
//! and pictures; the admin writes, each in its transaction and followed by the cache
//! invalidation it needs. The stock reservations are use cases of the same app, in
//! `reservations.rs`. Domain values in and out, no protobuf type (grpc.rs decodes and
//! encodes).
//!
//! The cache keeps the transport's encoded answers (protobuf), not rows: a hit is never
//! converted from rows again, which is what makes a cached read cheap. So the cached reads
//! take the transport's `encode` for a miss; a product and a listing page are answered as the
//! cached bytes (the gRPC server sends them as they are, super::encoded), the category list
//! and pictures decoded from them. The app knows only that an answer is a `prost::Message`,
//! never which one.

use std::time::Duration;

use anyhow::Context as _;
use prost::Message as _;
use sqlx::PgPool;

use crate::db::Database;

use super::domain::{MediaPath, NewProduct, Product, ProductPatch, ProductQuery};
use super::error::CatalogError;
use super::product_key;
use super::search_index::SearchIndex;
use super::store::{self, CategoryRow, ListingPage, Visibility};
use crate::cache::Cache;
use crate::clock::Clock;

/// How long a cached product stays.
const PRODUCT_TTL: Duration = Duration::from_secs(300);
/// How long the cached category list stays.
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

/// A stored picture.
#[derive(Debug, Clone)]
pub struct Media {
    pub content_type: String,
    /// The entity tag, unquoted.
    pub etag: String,
    pub bytes: Vec<u8>,
}

/// A page of products as a listing answers it.
#[derive(Debug, Clone)]
pub struct ProductPage {
    pub products: Vec<Product>,
    /// Every match, not only this page's.
    pub total: i64,
    pub skip: i64,
    /// The limit the page reports (see `Page::reported_limit`).
    pub limit: i64,
    /// The opaque cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The catalog's use cases. Cheap to clone.
#[derive(Clone)]
pub struct CatalogApp {
    /// The primary: writes, and reads inside them.
    pub(super) db: PgPool,
    /// Where reads that fill the cache go (a replica that has every catalog write, or the
    /// primary).
    replicas: Database,
    pub(super) cache: Cache,
    /// Dates reviews and wishlist entries.
    pub(super) clock: Clock,
    /// LOW_STOCK_THRESHOLD: a reservation or an admin's edit that takes a product's stock
    /// from above it to at or below it records `product.stock_low`.
    pub(super) low_stock_threshold: i32,
    /// Answers searches when set (SEARCH_INDEX); else PostgreSQL's full text does.
    pub(super) search: Option<SearchIndex>,
}

impl CatalogApp {
    /// The use cases over `db`, caching in `cache`.
    pub fn new(db: Database, cache: Cache) -> Self {
        CatalogApp {
            db: db.primary().clone(),
            replicas: db,
            cache,
            clock: Clock::system(),
            low_stock_threshold: 5,
            search: None,
        }
    }

    /// A product for customers, encoded by `encode` (the protobuf bytes of `M`): from the
    /// cache, else from the database (then cached). Deleted products are not found.
    ///
    /// Not decoded here: the gRPC server answers GetProduct with these bytes as they are
    /// (super::encoded). So an entry that does not decode (none is written so) is not deleted
    /// at its first read, as a decoded read's is: the edge answers 500 on it, and it lives until
    /// the product's next write or its TTL.
    pub async fn product_bytes<M, E>(
        &self,
        id: i64,
        encode: E,
    ) -> Result<bytes::Bytes, CatalogError>
    where
        M: prost::Message + Default,
        E: FnOnce(Product) -> M,
    {
        let key = product_key(id);
        self.cache
            .get_or_load(&key, PRODUCT_TTL, || async {
                let pool = self.replicas.reads().await;
                let mut conn = pool.acquire().await.context("acquiring a connection")?;
                let product = store::find_product(&mut conn, id, Visibility::Live)
                    .await?
                    .ok_or(CatalogError::ProductNotFound(id))?;
                Ok::<_, CatalogError>(encode(product).encode_to_vec().into())
            })
            .await
    }

    /// A page of products and the total, encoded by `encode` (the protobuf bytes of `M`): from
    /// the cache, else from the database (then cached). On a large catalog the exact total and
    /// the ranking of a search cost a scan of every match, so repeated pages come from the
    /// cache.
    ///
    /// Not decoded here, for the reason and with the caveat given in [`Self::product_bytes`].
    pub async fn page_bytes<M, E>(
        &self,
        query: &ProductQuery,
        encode: E,
    ) -> Result<bytes::Bytes, CatalogError>
    where
        M: prost::Message + Default,
        E: FnOnce(ProductPage) -> M,
    {
        let key = self.page_key(query).await;
        self.cache
            .get_or_load(&key, PAGE_TTL, || async {
                let listed = self.list(query).await?;
                let page = ProductPage {
                    limit: query.page.reported_limit(listed.products.len()),
                    products: listed.products,
                    total: listed.total,
                    skip: query.page.skip(),
                    next_cursor: listed.next.map(|after| after.encode(&query.shape())),
                };
                Ok::<_, CatalogError>(encode(page).encode_to_vec().into())
            })
            .await
    }

    /// A listing page from the store: a search from the index when there is one, caught up
    /// first with every change committed before this request (so it finds what PostgreSQL's
    /// full text would), its rows then read by id; everything else from PostgreSQL alone. A
    /// search while the index is still being built (a large catalog just after start-up)
    /// falls back to PostgreSQL; a relevance cursor minted by one and read by the other may
    /// then skip or repeat products (the two rank differently), once per process start.
    async fn list(&self, query: &ProductQuery) -> Result<ListingPage, CatalogError> {
        let searched = query.text.as_deref().is_some_and(|t| !t.trim().is_empty());
        let index = match self.search.as_ref().filter(|_| searched) {
            // Still being built (a large catalog, just started): PostgreSQL answers.
            Some(index) if index.catch_up(&self.db).await? => index,
            _ => {
                let pool = self.replicas.reads().await;
                return Ok(store::list_products(&pool, query).await?);
            }
        };
        let hits = index.search(query).await?;
        let pool = self.replicas.reads().await;
        let products = store::products_in_order(&pool, &hits.ids).await?;
        Ok(ListingPage {
            products,
            total: hits.total,
            next: hits.next,
        })
    }

    /// Every category, alphabetically by slug, as `encode` makes the list: from the cache,
    /// else from the database (then cached). An entry that does not decode is replaced.
    pub async fn categories<M, E>(&self, encode: E) -> Result<M, CatalogError>
    where
        M: prost::Message + Default,
        E: FnOnce(Vec<CategoryRow>) -> M,
    {
        if let Some(bytes) = self.cache.get(CATEGORIES_KEY).await
            && let Ok(cached) = M::decode(bytes)
        {
            return Ok(cached);
        }
        let answer = encode(store::categories(&self.replicas.reads().await).await?);
        self.cache
            .set(CATEGORIES_KEY, &answer.encode_to_vec(), CATEGORIES_TTL)
            .await;
        Ok(answer)
    }

    /// The picture at `path`: from the cache, else from the database (then cached).
    pub async fn media(&self, path: &MediaPath) -> Result<Media, CatalogError> {
        let key = format!("catalog:media:{}", path.as_str());
        let bytes = self
            .cache
            .get_or_load(&key, MEDIA_TTL, || async {
                let media = store::find_media(&self.db, path)
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
        Ok(Media {
            content_type: media.content_type,
            etag: media.etag,
            bytes: media.bytes,
        })
    }

    /// Creates a product with its gallery (by admin `admin`), in one transaction.
    pub async fn create_product(
        &self,
        admin: i64,
        new: &NewProduct,
    ) -> Result<Product, CatalogError> {
        let slug = new.category.as_str();
        let mut tx = self.db.begin().await.context("starting a transaction")?;
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
        tracing::info!(admin, product = product.id, "product created");
        // Nothing cached can hold the new id, but a racing read of it
        // (answered 404, never cached) costs nothing to rule out.
        self.invalidate(vec![product_key(product.id)]).await;
        Ok(product)
    }

    /// Applies a patch (fields and, if given, the whole gallery) by admin `admin`, in one
    /// transaction; not found if the product does not exist or is deleted.
    pub async fn update_product(
        &self,
        admin: i64,
        id: i64,
        patch: &ProductPatch,
    ) -> Result<Product, CatalogError> {
        let slug = patch.category.as_ref().map(|c| c.as_str());
        let mut tx = self.db.begin().await.context("starting a transaction")?;
        let category_id = match &patch.category {
            None => None,
            Some(category) => Some(
                store::category_id(&mut *tx, category)
                    .await?
                    .ok_or_else(|| CatalogError::UnknownCategory(category.as_str().to_owned()))?,
            ),
        };
        // The stock before a patch that sets it, read under the row's lock: an admin who
        // lowers it across the threshold raises the alert a reservation would.
        let stock_before = match patch.stock {
            Some(_) => store::lock_stock(&mut tx, &[id]).await?.get(&id).copied(),
            None => None,
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
        if let Some(before) = stock_before {
            let change = store::StockChange {
                id,
                title: product.title.clone(),
                before,
                after: product.stock,
            };
            self.alert_low_stock(&mut tx, &[change]).await?;
        }
        tx.commit().await.context("committing a product update")?;
        tracing::info!(admin, product = id, "product updated");
        self.invalidate(vec![product_key(id)]).await;
        Ok(product)
    }

    /// Records `product.stock_low` in `tx`, the transaction of the stock change, for each of
    /// `changes` that crosses [`Self::low_stock_threshold`]: the alert commits with the stock
    /// it tells of, once per crossing.
    pub(super) async fn alert_low_stock(
        &self,
        tx: &mut sqlx::PgConnection,
        changes: &[store::StockChange],
    ) -> Result<(), CatalogError> {
        let threshold = self.low_stock_threshold;
        for change in changes.iter().filter(|c| c.crosses_below(threshold)) {
            let alert = crate::events::StockLow {
                product_id: change.id,
                title: change.title.clone(),
                stock: change.after,
                threshold,
            };
            crate::events::record(
                tx,
                self.clock.now(),
                crate::events::EventData::StockLow(alert),
            )
            .await
            .context("recording a low-stock event")?;
        }
        Ok(())
    }

    /// Marks the product deleted (by admin `admin`) and reads it back, in one transaction.
    /// It then reads as not found and leaves every listing; orders keep pointing at it.
    pub async fn delete_product(&self, admin: i64, id: i64) -> Result<Product, CatalogError> {
        let mut tx = self.db.begin().await.context("starting a transaction")?;
        store::soft_delete_product(&mut *tx, id)
            .await
            .context("deleting a product")?
            .ok_or(CatalogError::ProductNotFound(id))?;
        let product = store::find_product(&mut tx, id, Visibility::IncludingDeleted)
            .await?
            .context("reading back a deleted product")?;
        tx.commit().await.context("committing a product deletion")?;
        tracing::info!(admin, product = id, "product deleted");
        self.invalidate(vec![product_key(id)]).await;
        Ok(product)
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
                // Boxed: the invalidation's future is large, and every hit would carry it.
                Box::pin(self.cache.delete(&[key.to_owned()])).await;
                Err(anyhow::Error::new(err)
                    .context(format!("decoding the cache entry {key}"))
                    .into())
            }
        }
    }

    /// The cache key of a listing page: the current generation and a digest of the query.
    ///
    /// Without a generation (none written since the deployment started, or it expired) this
    /// read starts one (`start_generation`): a missing key is not kept in the first tier, so
    /// until some write made one, every listing read asked Redis for it (13,000 of a cached
    /// page's 155,000 instructions, callgrind, docs/BENCHMARKS.md). A new generation is as
    /// safe from a reader as from a writer: no page was ever stored under it.
    async fn page_key(&self, query: &ProductQuery) -> String {
        let generation = match self.cache.get(GENERATION_KEY).await {
            Some(generation) => generation,
            None => Box::pin(start_generation(&self.cache)).await,
        };
        let generation = std::str::from_utf8(&generation).unwrap_or("0");
        format!("catalog:page:{generation}:{}", hex::encode(query.digest()))
    }

    /// Deletes cache keys after a committed write. A reader that loaded
    /// the old row just before the commit can still put it back after the
    /// first delete; the second delete, shortly after, closes that window,
    /// so no instance serves the old product for the whole TTL.
    pub(super) async fn invalidate(&self, keys: Vec<String>) {
        retire(&self.cache, keys).await;
    }
}

/// What [`CatalogApp::invalidate`] does, for a writer that holds only the cache (the
/// `catalog.purchases` consumer).
pub(super) async fn retire(cache: &Cache, keys: Vec<String>) {
    // Every cached listing page at once: readers move to a new generation's keys. A
    // reader that read the old generation before this stores its page under that old
    // key, which nobody reads any more.
    start_generation(cache).await;
    cache.delete(&keys).await;
    let cache = cache.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SECOND_INVALIDATION).await;
        cache.delete(&keys).await;
    });
}

/// Moves the listing pages to a new generation, and answers it; "0" when the cache could not
/// store it (Redis unreachable), so that readers keep sharing one key, and with it one load
/// per page (the cache's single flight), rather than each making its own.
async fn start_generation(cache: &Cache) -> bytes::Bytes {
    let generation = uuid::Uuid::new_v4().simple().to_string();
    if cache
        .set(GENERATION_KEY, generation.as_bytes(), GENERATION_TTL)
        .await
    {
        generation.into()
    } else {
        bytes::Bytes::from_static(b"0")
    }
}
