//! Customer reviews and wishlists: use cases of the catalog's app, each write in one
//! transaction, plus the `catalog.purchases` event consumer that tells reviews of delivered
//! products apart (verified purchases).
//!
//! A product's `rating` is derived: the mean of its reviews (two decimals), recomputed in the
//! transaction of every review change while the product row is locked, so concurrent reviews
//! of one product cannot each miss the other's. After the commit the product's cache entry and
//! every listing page are retired the way an admin edit retires them (`CatalogApp::invalidate`:
//! Redis first, then the announcement every instance's first tier hears).

use anyhow::Context as _;
use sqlx::PgConnection;

use super::app::{CatalogApp, retire};
use super::domain::{
    NewReview, Review, ReviewEdit, WISHLIST_MAX_ITEMS, WishlistEntry, WishlistPage,
};
use super::error::CatalogError;
use super::product_key;
use super::store;
use crate::authn::Principal;
use crate::cache::Cache;
use crate::events::{self, Consumer, Event, EventData, EventKind, ReviewCreated};

/// The unique index behind 409 REVIEW_EXISTS.
const ONE_REVIEW_PER_USER: &str = "reviews_one_per_user_product";

/// A wishlist page and the size of the whole list.
#[derive(Debug, Clone)]
pub struct Wishlist {
    pub entries: Vec<WishlistEntry>,
    pub total: i64,
    pub page: WishlistPage,
}

impl CatalogApp {
    /// Reviews live product `product_id` as `author`: the reviewer's name and email come from
    /// their account (the token's email when the account row is gone), the verified flag
    /// from the purchases the catalog has heard of; records `review.created` with it.
    pub async fn create_review(
        &self,
        author: &Principal,
        product_id: i64,
        new: &NewReview,
    ) -> Result<Review, CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await.context("starting a transaction")?;
        match store::lock_product_for_reviews(&mut tx, product_id).await? {
            Some(true) => {}
            _ => return Err(CatalogError::ProductNotFound(product_id)),
        }
        let (name, email) = reviewer(&mut tx, author).await?;
        let verified = store::has_purchased(&mut tx, author.user_id, product_id).await?;
        let review = store::insert_review(
            &mut tx,
            product_id,
            author.user_id,
            new,
            &name,
            &email,
            verified,
            now,
        )
        .await
        .map_err(|e| {
            let constraint = e.as_database_error().and_then(|d| d.constraint());
            if constraint == Some(ONE_REVIEW_PER_USER) {
                CatalogError::ReviewExists(product_id)
            } else {
                anyhow::Error::new(e).context("inserting a review").into()
            }
        })?;
        store::refresh_rating(&mut tx, product_id).await?;
        events::record(
            &mut tx,
            now,
            EventData::ReviewCreated(ReviewCreated {
                review_id: review.id,
                product_id,
                user_id: author.user_id,
                rating: review.rating.into(),
            }),
        )
        .await
        .context("recording review.created")?;
        tx.commit().await.context("committing a review")?;
        tracing::info!(
            user = author.user_id,
            product = product_id,
            review = review.id,
            "review created"
        );
        self.invalidate(vec![product_key(product_id)]).await;
        Ok(review)
    }

    /// Changes `user_id`'s review `id`; another user's (or a seeded one) is not found.
    pub async fn update_review(
        &self,
        user_id: i64,
        id: i64,
        edit: &ReviewEdit,
    ) -> Result<Review, CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await.context("starting a transaction")?;
        let product_id = match store::review_owner(&mut tx, id).await? {
            Some((product_id, Some(owner))) if owner == user_id => product_id,
            _ => return Err(CatalogError::ReviewNotFound(id)),
        };
        // The product first, as every review change locks it (one lock order, no deadlock).
        store::lock_product_for_reviews(&mut tx, product_id).await?;
        let review = store::update_review(&mut tx, id, user_id, edit, now)
            .await?
            .ok_or(CatalogError::ReviewNotFound(id))?;
        store::refresh_rating(&mut tx, product_id).await?;
        tx.commit().await.context("committing a review edit")?;
        tracing::info!(
            user = user_id,
            product = product_id,
            review = id,
            "review updated"
        );
        self.invalidate(vec![product_key(product_id)]).await;
        Ok(review)
    }

    /// Deletes review `id`: the author's own, or any for an admin (moderation; seeded
    /// reviews included).
    pub async fn delete_review(&self, caller: &Principal, id: i64) -> Result<Review, CatalogError> {
        let mut tx = self.db.begin().await.context("starting a transaction")?;
        let product_id = match store::review_owner(&mut tx, id).await? {
            Some((product_id, owner)) if caller.is_admin() || owner == Some(caller.user_id) => {
                product_id
            }
            _ => return Err(CatalogError::ReviewNotFound(id)),
        };
        store::lock_product_for_reviews(&mut tx, product_id).await?;
        let review = store::delete_review(&mut tx, id)
            .await?
            .ok_or(CatalogError::ReviewNotFound(id))?;
        store::refresh_rating(&mut tx, product_id).await?;
        tx.commit().await.context("committing a review deletion")?;
        tracing::info!(
            user = caller.user_id,
            product = product_id,
            review = id,
            "review deleted"
        );
        self.invalidate(vec![product_key(product_id)]).await;
        Ok(review)
    }

    /// A page of `user_id`'s wishlist, newest first. From the primary: a wishlist is read
    /// right after its owner changed it, and it is not cached.
    pub async fn wishlist(
        &self,
        user_id: i64,
        page: WishlistPage,
    ) -> Result<Wishlist, CatalogError> {
        let entries = store::wishlist_page(&self.db, user_id, page).await?;
        let total = store::wishlist_size(&self.db, user_id).await?;
        Ok(Wishlist {
            entries,
            total,
            page,
        })
    }

    /// Adds live product `product_id` to `user_id`'s wishlist; the bool is true when it
    /// was not there yet. Past [`WISHLIST_MAX_ITEMS`] a new product is refused.
    pub async fn add_to_wishlist(
        &self,
        user_id: i64,
        product_id: i64,
    ) -> Result<(WishlistEntry, bool), CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await.context("starting a transaction")?;
        store::lock_wishlist(&mut tx, user_id).await?;
        if let Some(entry) = store::wishlist_entry(&mut *tx, user_id, product_id).await? {
            return Ok((entry, false));
        }
        if store::wishlist_size(&mut *tx, user_id).await? >= WISHLIST_MAX_ITEMS {
            return Err(CatalogError::WishlistFull(WISHLIST_MAX_ITEMS));
        }
        // A product deleted after this check has its entry hidden like any deleted one's.
        if !store::product_is_live(&mut *tx, product_id).await? {
            return Err(CatalogError::ProductNotFound(product_id));
        }
        let added = store::insert_wishlist_item(&mut tx, user_id, product_id, now).await?;
        let entry = store::wishlist_entry(&mut *tx, user_id, product_id)
            .await?
            .ok_or(CatalogError::ProductNotFound(product_id))?;
        tx.commit().await.context("committing a wishlist entry")?;
        Ok((entry, added))
    }

    /// Removes `product_id` from `user_id`'s wishlist and answers the entry as it was.
    pub async fn remove_from_wishlist(
        &self,
        user_id: i64,
        product_id: i64,
    ) -> Result<WishlistEntry, CatalogError> {
        let mut tx = self.db.begin().await.context("starting a transaction")?;
        // A deleted product's entry is not shown, so it is not found here either.
        let entry = store::wishlist_entry(&mut *tx, user_id, product_id)
            .await?
            .ok_or(CatalogError::WishlistItemNotFound(product_id))?;
        if !store::delete_wishlist_item(&mut tx, user_id, product_id).await? {
            return Err(CatalogError::WishlistItemNotFound(product_id));
        }
        tx.commit().await.context("committing a wishlist removal")?;
        Ok(entry)
    }
}

/// The name and email a review by `author` shows: their account's, read through the
/// identity kernel (the catalog imports no users module).
async fn reviewer(
    tx: &mut PgConnection,
    author: &Principal,
) -> Result<(String, String), CatalogError> {
    let contact = crate::accounts::store::contact(&mut *tx, author.user_id)
        .await
        .context("reading the reviewer's account")?;
    Ok(match contact {
        Some(contact) => {
            let name = contact.name();
            let name = if name.is_empty() {
                local_part(&contact.email)
            } else {
                name
            };
            (name, contact.email)
        }
        None => (local_part(&author.email), author.email.clone()),
    })
}

/// The part of an email before the `@`, as a display name of last resort.
fn local_part(email: &str) -> String {
    email.split('@').next().unwrap_or(email).to_owned()
}

/// `catalog.purchases`: records which products each user has received from
/// `order.delivered` events, so reviews can say "verified purchase" without the catalog
/// reading the orders' tables; reviews written before the delivery become verified too
/// (their products' cache entries retired shortly after).
/// Idempotent by itself (`ON CONFLICT DO NOTHING`), and the runner skips redeliveries.
#[derive(Clone, Default)]
pub struct PurchasesConsumer {
    /// Where the products whose reviews turn verified are retired from (none in tests that
    /// call `handle` directly).
    cache: Option<Cache>,
}

/// How long after a delivery made reviews verified their products' cache entries are
/// retired: `handle` runs inside the runner's transaction, which commits after it returns,
/// so retiring at once could let a reader cache the uncommitted-yet state again.
const VERIFIED_RETIRE_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

impl PurchasesConsumer {
    /// The consumer, retiring the cache entries of products whose reviews it verifies.
    pub fn new(cache: Cache) -> Self {
        PurchasesConsumer { cache: Some(cache) }
    }
}

#[async_trait::async_trait]
impl Consumer for PurchasesConsumer {
    fn name(&self) -> &'static str {
        "catalog.purchases"
    }

    fn wants(&self, kind: EventKind) -> bool {
        kind == EventKind::OrderDelivered
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        let EventData::OrderDelivered(order) = &event.data else {
            return Ok(());
        };
        let mut products: Vec<i64> = order.items.iter().map(|l| l.product_id).collect();
        products.sort_unstable();
        products.dedup();
        let changed =
            store::record_purchases(tx, order.user_id, &products, event.occurred_at).await?;
        if !changed.is_empty() {
            tracing::debug!(user = order.user_id, products = ?changed, "reviews verified");
            if let Some(cache) = self.cache.clone() {
                // After the runner's commit (see VERIFIED_RETIRE_DELAY); `retire` deletes
                // again 500 ms later. A rare commit slower than that leaves the badge stale
                // for at most the product's TTL; stars and comments, which move the rating,
                // are retired exactly by the review use cases.
                let keys = changed.into_iter().map(product_key).collect();
                tokio::spawn(async move {
                    tokio::time::sleep(VERIFIED_RETIRE_DELAY).await;
                    retire(&cache, keys).await;
                });
            }
        }
        Ok(())
    }
}
