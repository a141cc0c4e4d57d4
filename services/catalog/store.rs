//! The catalog's SQL: every query the catalog runs, and nothing else.
//!
//! Helpers take `impl PgExecutor<'_>` (or a connection where they run more
//! than one statement) so the gRPC layer decides what runs in a transaction.
//! Reads only ever see live rows (`deleted_at IS NULL`) unless they say
//! otherwise. Page queries fetch images and reviews for the whole page in
//! one query each (`product_id = ANY($1)`), never one per product.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments as _, PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};

use super::domain::{
    After, CategorySlug, ImageUrl, MediaPath, NewProduct, NewReview, Product, ProductPatch,
    ProductQuery, ProductSummary, Review, ReviewEdit, SortKey, SortOrder, SortValue, WishlistEntry,
    WishlistPage,
};

/// How close (pg_trgm `word_similarity`) a search term must come to a word
/// of the title to match despite a typo: "iphnoe" scores 0.43 against
/// "iPhone", unrelated words score well below. pg_trgm's default (0.6)
/// misses single transpositions.
const TYPO_THRESHOLD: &str = "0.4";

/// A search adds typo (trigram) matches only when the full text finds fewer
/// products than this: a whole default page.
const TYPO_FALLBACK_BELOW: i64 = 10;

/// One `products` row joined with its category slug; images and reviews
/// are attached afterwards.
#[derive(sqlx::FromRow)]
struct ProductRow {
    id: i64,
    title: String,
    description: String,
    price_cents: i64,
    discount_percentage: f64,
    thumbnail: String,
    category: String,
    brand: Option<String>,
    rating: f64,
    stock: i32,
    sku: Option<String>,
    tags: Vec<String>,
    weight: Option<f64>,
    width: Option<f64>,
    height: Option<f64>,
    depth: Option<f64>,
    warranty_information: Option<String>,
    shipping_information: Option<String>,
    availability_status: String,
    return_policy: Option<String>,
    minimum_order_quantity: i32,
    barcode: Option<String>,
    qr_code: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl ProductRow {
    fn into_product(self, images: Vec<String>, reviews: Vec<Review>) -> Product {
        Product {
            id: self.id,
            title: self.title,
            description: self.description,
            price_cents: self.price_cents,
            discount_percentage: self.discount_percentage,
            thumbnail: self.thumbnail,
            images,
            category: self.category,
            brand: self.brand,
            rating: self.rating,
            stock: self.stock,
            sku: self.sku,
            tags: self.tags,
            weight: self.weight,
            width: self.width,
            height: self.height,
            depth: self.depth,
            warranty_information: self.warranty_information,
            shipping_information: self.shipping_information,
            availability_status: self.availability_status,
            return_policy: self.return_policy,
            minimum_order_quantity: self.minimum_order_quantity,
            barcode: self.barcode,
            qr_code: self.qr_code,
            reviews,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        }
    }
}

// How the statements that share SQL are put together. `query!` checks a statement at compile
// time but takes it as one string literal, while the listings are eleven statements (a count,
// a page in each of eight orders, two search rankings) with one WHERE clause, and three of the
// heads below serve several statements. So these are built at run time with sqlx's
// `QueryBuilder`, always the same way:
//
//   head          PRODUCT_ROWS, COUNT_ROWS or ID_ROWS
//   filters       LISTING_FILTERS, placeholders $1-$7 bound from `ListingArgs::filters`
//                 (numbered, because the search text is referred to up to five times)
//   order, page   an ORDER BY from the fixed lists in `page_rows` / `ranked_ids`, then
//                 LIMIT / OFFSET through `push_bind`, which numbers on from $8
//
// (a read of given products is PRODUCT_ROWS and a WHERE whose values go through `push_bind`).
// Only the `&'static str` pieces of this file are ever pushed as SQL; every value a request
// carries is bound. A filter that is not set is bound as NULL (or false) rather than left out,
// so each listing order is one statement text whatever the filters: a connection prepares it
// once, and PostgreSQL plans the unset filters away per execution, as it did for the
// `query!` statements these replace. Every other statement stays `query!`, checked at
// compile time against `.sqlx/`.

/// `SELECT <the columns of a ProductRow>`, from products joined with their category.
const PRODUCT_ROWS: &str = r#"
    SELECT p.id, p.title, p.description, p.price_cents,
           p.discount_percentage::float8 AS discount_percentage,
           p.thumbnail, c.slug AS category, p.brand,
           p.rating::float8 AS rating, p.stock, p.sku, p.tags,
           p.weight::float8 AS weight, p.width::float8 AS width,
           p.height::float8 AS height, p.depth::float8 AS depth,
           p.warranty_information, p.shipping_information,
           p.availability_status,
           p.return_policy, p.minimum_order_quantity, p.barcode, p.qr_code,
           p.created_at, p.updated_at, p.deleted_at
    FROM products p
    JOIN categories c ON c.id = p.category_id
"#;

/// `SELECT count(*)` of products. No join: a search's count then reads no column of the
/// matching rows (joining the category made it deform every row up to `category_id`, which
/// doubled the time of a count on a large catalog).
const COUNT_ROWS: &str = r#"
    SELECT count(*)
    FROM products p
"#;

/// The text rank of a search ($6) over the full text, float4. Spelled once, as it appears in
/// the head, the keyset and the order of a ranked page.
const TEXT_RANK: &str = "ts_rank(p.search_document, websearch_to_tsquery('english', $6))";

/// `SELECT p.id, rank` of products, by [`TEXT_RANK`]: a search by relevance.
const RANKED_IDS: &str = r#"
    SELECT p.id, ts_rank(p.search_document, websearch_to_tsquery('english', $6)) AS rank
    FROM products p
"#;

/// Whether a row matches the full text ($6) at all (a typo search ranks these first).
const FULL_TEXT_MATCH: &str = "(p.search_document @@ websearch_to_tsquery('english', $6))";
/// The rank of a typo search within its group: the text rank plus the title's similarity.
const TYPO_SCORE: &str = "(ts_rank(p.search_document, websearch_to_tsquery('english', $6)) \
                          + word_similarity($6, p.title))";

/// `SELECT p.id, full_text, score` of products: a search by relevance with typo matches.
const TYPO_RANKED_IDS: &str = r#"
    SELECT p.id,
           (p.search_document @@ websearch_to_tsquery('english', $6)) AS full_text,
           (ts_rank(p.search_document, websearch_to_tsquery('english', $6))
            + word_similarity($6, p.title)) AS score
    FROM products p
"#;

/// The WHERE clause of every listing. Parameters: $1 category slug, $2 min price (cents), $3
/// max price, $4 brand, $5 in stock only, $6 search text, $7 typo-tolerant. A match of the
/// text is full-text (title, brand, description) or, when $7, also a trigram match on the
/// title. A NULL parameter (or a false $7) is no filter; PostgreSQL plans these
/// `$n IS NULL OR ..` away per execution, so without $7 the full-text match alone can use its
/// GIN index.
const LISTING_FILTERS: &str = r#"
    WHERE p.deleted_at IS NULL
      AND ($1::text IS NULL
           OR p.category_id = (SELECT id FROM categories WHERE slug = $1))
      AND ($2::bigint IS NULL OR p.price_cents >= $2)
      AND ($3::bigint IS NULL OR p.price_cents <= $3)
      AND ($4::text IS NULL OR lower(p.brand) = lower($4))
      AND (NOT $5::bool OR p.stock > 0)
      AND ($6::text IS NULL
           OR p.search_document @@ websearch_to_tsquery('english', $6)
           OR ($7::bool AND $6 <% p.title))
"#;

/// The bound parameters of a listing.
struct ListingArgs<'a> {
    category: Option<&'a str>,
    min_price: Option<i64>,
    max_price: Option<i64>,
    brand: Option<&'a str>,
    in_stock: bool,
    text: Option<&'a str>,
    /// Whether the text also matches titles within a typo (trigram).
    typos: bool,
    /// The rows asked for, plus one: whether that one comes back says whether there is a
    /// next page (and so a `nextCursor`), without a second query.
    limit: i64,
    skip: i64,
    /// The keyset position the page starts after (`cursor`).
    after: Option<&'a After>,
}

impl<'a> ListingArgs<'a> {
    fn of(query: &'a ProductQuery) -> Self {
        ListingArgs {
            category: query.filter.category.as_deref(),
            min_price: query.filter.price.min_cents,
            max_price: query.filter.price.max_cents,
            brand: query.filter.brand.as_deref(),
            in_stock: query.filter.in_stock,
            text: query
                .text
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty()),
            typos: query.after.as_ref().is_some_and(|a| a.typos),
            limit: query.page.limit() + 1,
            skip: query.page.skip(),
            after: query.after.as_ref(),
        }
    }

    /// $1-$7 of [`LISTING_FILTERS`], in order.
    fn filters(&self) -> Result<PgArguments, BoxDynError> {
        let mut arguments = PgArguments::default();
        arguments.add(self.category)?;
        arguments.add(self.min_price)?;
        arguments.add(self.max_price)?;
        arguments.add(self.brand)?;
        arguments.add(self.in_stock)?;
        arguments.add(self.text)?;
        arguments.add(self.typos)?;
        Ok(arguments)
    }

    /// `head` followed by the filters of this listing.
    fn statement(&self, head: &'static str) -> anyhow::Result<QueryBuilder<Postgres>> {
        let filters = self
            .filters()
            .map_err(|err| anyhow::anyhow!("binding a listing's filters: {err}"))?;
        let mut sql = QueryBuilder::with_arguments(head, filters);
        sql.push(LISTING_FILTERS);
        Ok(sql)
    }

    /// The end of a page of this listing: `order_by` (one of the fixed orders, never request
    /// text) and the page's LIMIT and OFFSET.
    fn finish_page(&self, sql: &mut QueryBuilder<Postgres>, order_by: &'static str) {
        sql.push(" ORDER BY ")
            .push(order_by)
            .push(" LIMIT ")
            .push_bind(self.limit)
            .push(" OFFSET ")
            .push_bind(self.skip);
    }
}

/// A page as the store read it.
pub struct ListingPage {
    pub products: Vec<Product>,
    /// Every match, not only this page's (the keyset does not narrow it).
    pub total: i64,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<After>,
}

/// One category: its slug and display name.
pub struct CategoryRow {
    pub slug: String,
    pub name: String,
}

/// Every category, alphabetically by slug (GET /products/categories).
#[tracing::instrument(skip_all)]
pub async fn categories(db: impl PgExecutor<'_>) -> anyhow::Result<Vec<CategoryRow>> {
    sqlx::query_as!(
        CategoryRow,
        r#"SELECT slug, name FROM categories ORDER BY slug"#
    )
    .fetch_all(db)
    .await
    .context("listing categories")
}

/// A stored picture.
pub struct MediaRow {
    pub content_type: String,
    pub etag: String,
    pub bytes: Vec<u8>,
}

/// The picture at `path`, if there is one.
#[tracing::instrument(skip(db))]
pub async fn find_media(
    db: impl PgExecutor<'_>,
    path: &MediaPath,
) -> anyhow::Result<Option<MediaRow>> {
    sqlx::query_as!(
        MediaRow,
        r#"SELECT content_type, etag, bytes FROM media WHERE path = $1"#,
        path.as_str()
    )
    .fetch_optional(db)
    .await
    .context("reading a picture")
}

/// The id of the category with this slug, if there is one.
#[tracing::instrument(skip(db))]
pub async fn category_id(
    db: impl PgExecutor<'_>,
    slug: &CategorySlug,
) -> anyhow::Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"SELECT id FROM categories WHERE slug = $1"#,
        slug.as_str()
    )
    .fetch_optional(db)
    .await
    .with_context(|| format!("looking up category {}", slug.as_str()))
}

/// Which rows [`find_product`] may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Only products that are not deleted: what customers see.
    Live,
    /// Soft-deleted ones too: for the answer to a delete.
    IncludingDeleted,
}

/// One product with its images and reviews.
#[tracing::instrument(skip(db))]
pub async fn find_product(
    db: &mut PgConnection,
    id: i64,
    visibility: Visibility,
) -> anyhow::Result<Option<Product>> {
    let include_deleted = visibility == Visibility::IncludingDeleted;
    let mut sql = QueryBuilder::new(PRODUCT_ROWS);
    sql.push(" WHERE p.id = ")
        .push_bind(id)
        .push(" AND (")
        .push_bind(include_deleted)
        .push(" OR p.deleted_at IS NULL)");
    let row = sql
        .build_query_as::<ProductRow>()
        .fetch_optional(&mut *db)
        .await
        .with_context(|| format!("loading product {id}"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut products = attach_details(db, vec![row]).await?;
    Ok(products.pop())
}

/// A page of products matching `query`, and how many match in all.
///
/// The count and the page run concurrently on two connections when the
/// pool has one to spare, else one after the other. A search
/// (GET /products/search) is full-text first: its GIN index answers in a
/// fraction of the time a trigram scan of every title takes (on 1,000,000
/// products, 0.3 s against 3 s for the count). Only when the full text finds
/// fewer than [`TYPO_FALLBACK_BELOW`] products are titles within a typo
/// added, in one transaction that lowers the trigram threshold for its own
/// statements. The choice does not depend on the page asked for, so every
/// page of one search agrees on the total.
#[tracing::instrument(skip(db))]
pub async fn list_products(db: &PgPool, query: &ProductQuery) -> anyhow::Result<ListingPage> {
    let args = ListingArgs::of(query);
    if args.typos {
        // A later page of a search that matched typos: it keeps that choice (see `After`).
        return search_with_typos(db, query, args).await;
    }
    let mut conn = db.acquire().await.context("acquiring a connection")?;
    // The count gets a connection of its own only if one is idle: waiting for a second one
    // while holding the first let concurrent listings each hold one and wait for another
    // until the pool's acquire timeout (a 503 for all of them).
    let (rows, total) = match db.try_acquire() {
        Some(mut spare) => tokio::try_join!(
            page_rows(&mut conn, &args, query.sort, query.order),
            count_matches(&mut *spare, &args),
        )?,
        None => {
            let rows = page_rows(&mut conn, &args, query.sort, query.order).await?;
            (rows, count_matches(&mut *conn, &args).await?)
        }
    };
    // Rarely, the page just read is thrown away for the typo search: reading it alongside
    // the count keeps the common case (enough full-text matches) to one round of queries.
    // A later page (cursor) keeps the choice of its first page, whatever the count is now.
    if args.text.is_some() && args.after.is_none() && total < TYPO_FALLBACK_BELOW {
        drop(conn);
        return search_with_typos(db, query, args).await;
    }
    let (rows, next) = rows;
    let products = attach_details(&mut conn, rows).await?;
    Ok(ListingPage {
        products,
        total,
        next,
    })
}

/// [`list_products`] with titles within a typo of the text also matching.
async fn search_with_typos(
    db: &PgPool,
    query: &ProductQuery,
    args: ListingArgs<'_>,
) -> anyhow::Result<ListingPage> {
    let args = ListingArgs {
        typos: true,
        ..args
    };
    let mut tx = db.begin().await.context("starting a search transaction")?;
    sqlx::query!(
        r#"SELECT set_config('pg_trgm.word_similarity_threshold', $1, true)"#,
        TYPO_THRESHOLD
    )
    .fetch_one(&mut *tx)
    .await
    .context("setting the trigram threshold")?;
    let total = count_matches(&mut *tx, &args).await?;
    let (rows, next) = page_rows(&mut tx, &args, query.sort, query.order).await?;
    let products = attach_details(&mut tx, rows).await?;
    tx.commit().await.context("ending the search transaction")?;
    Ok(ListingPage {
        products,
        total,
        next,
    })
}

async fn count_matches(db: impl PgExecutor<'_>, a: &ListingArgs<'_>) -> anyhow::Result<i64> {
    a.statement(COUNT_ROWS)?
        .build_query_scalar::<i64>()
        .fetch_one(db)
        .await
        .context("counting products")
}

/// The rows of a page (at most `limit - 1` of them, see [`ListingArgs::limit`]), and where
/// the next page starts if there is one.
async fn page_rows(
    conn: &mut PgConnection,
    args: &ListingArgs<'_>,
    sort: Option<SortKey>,
    order: SortOrder,
) -> anyhow::Result<(Vec<ProductRow>, Option<After>)> {
    let page_size = usize::try_from(args.limit - 1).unwrap_or(usize::MAX);
    if sort.is_none() && args.text.is_some() {
        let mut ranked = ranked_ids(&mut *conn, args).await?;
        let next = (ranked.len() > page_size).then(|| {
            ranked.truncate(page_size);
            ranked.last().map(|(id, value)| After {
                value: value.clone(),
                id: *id,
                typos: args.typos,
            })
        });
        let ids: Vec<i64> = ranked.iter().map(|(id, _)| *id).collect();
        return Ok((rows_in_order(conn, &ids).await?, next.flatten()));
    }
    use SortOrder::{Asc, Desc};
    // Listings (and sorted searches) read their page in one query, in index
    // order where there is one. Ties break on id in the same direction:
    // pages are stable, and one (key, id) index serves both directions, and
    // the keyset of a cursor is a row comparison `(key, id) > (.., ..)` that
    // PostgreSQL starts in that index (every sort key is NOT NULL, so no
    // NULL ever falls outside the comparison).
    let (order_by, key) = match (sort, order) {
        (None, Asc) => ("p.id ASC", "p.id"),
        (None, Desc) => ("p.id DESC", "p.id"),
        (Some(SortKey::Price), Asc) => ("p.price_cents ASC, p.id ASC", "(p.price_cents, p.id)"),
        (Some(SortKey::Price), Desc) => ("p.price_cents DESC, p.id DESC", "(p.price_cents, p.id)"),
        (Some(SortKey::Rating), Asc) => ("p.rating ASC, p.id ASC", "(p.rating, p.id)"),
        (Some(SortKey::Rating), Desc) => ("p.rating DESC, p.id DESC", "(p.rating, p.id)"),
        (Some(SortKey::Title), Asc) => ("p.title ASC, p.id ASC", "(p.title, p.id)"),
        (Some(SortKey::Title), Desc) => ("p.title DESC, p.id DESC", "(p.title, p.id)"),
    };
    let mut sql = args.statement(PRODUCT_ROWS)?;
    if let Some(after) = args.after {
        sql.push(" AND ")
            .push(key)
            .push(if order == Asc { " > " } else { " < " });
        match &after.value {
            SortValue::Id => {
                sql.push_bind(after.id);
            }
            SortValue::Price(cents) => {
                sql.push("(")
                    .push_bind(*cents)
                    .push(", ")
                    .push_bind(after.id)
                    .push(")");
            }
            // Hundredths back to the column's exact NUMERIC(3, 2).
            SortValue::Rating(hundredths) => {
                sql.push("((")
                    .push_bind(*hundredths)
                    .push("::bigint)::numeric / 100, ")
                    .push_bind(after.id)
                    .push(")");
            }
            SortValue::Title(title) => {
                sql.push("(")
                    .push_bind(title.clone())
                    .push(", ")
                    .push_bind(after.id)
                    .push(")");
            }
            SortValue::Rank(_) | SortValue::TypoRank { .. } => {
                anyhow::bail!("a relevance cursor on a sorted listing")
            }
        }
    }
    args.finish_page(&mut sql, order_by);
    let mut rows = sql
        .build_query_as::<ProductRow>()
        .fetch_all(&mut *conn)
        .await
        .context("listing products")?;
    let next = if rows.len() > page_size {
        rows.truncate(page_size);
        rows.last().map(|row| After {
            value: match sort {
                None => SortValue::Id,
                Some(SortKey::Price) => SortValue::Price(row.price_cents),
                Some(SortKey::Rating) => SortValue::Rating((row.rating * 100.0).round() as i64),
                Some(SortKey::Title) => SortValue::Title(row.title.clone()),
            },
            id: row.id,
            typos: args.typos,
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// The ids of a search's page by relevance, best first whatever the order
/// asked for, each with its rank (the next page's keyset). The rank is
/// computed for every hit, so this ranks ids only and the page's rows are
/// loaded afterwards: carrying every hit's whole row to the sort cost 4-33%
/// more with 128 MB of shared buffers, 1.2-1.8x more with the catalog in them
/// (psql, 1,000,000 products). A cursor's keyset (rank below the last one's,
/// or equal with a greater id) cannot use an index, as the rank depends on the
/// query; it spares the sort, though: a deep page is a top-N of the hits past
/// the position instead of a sort of every hit up to the offset.
async fn ranked_ids(
    conn: &mut PgConnection,
    args: &ListingArgs<'_>,
) -> anyhow::Result<Vec<(i64, SortValue)>> {
    if !args.typos {
        // Full text only: the text rank decides (the title weighs most).
        let mut sql = args.statement(RANKED_IDS)?;
        match args.after.map(|a| (&a.value, a.id)) {
            None => {}
            Some((SortValue::Rank(rank), id)) => {
                sql.push(" AND (")
                    .push(TEXT_RANK)
                    .push(" < ")
                    .push_bind(*rank)
                    .push("::float4 OR (")
                    .push(TEXT_RANK)
                    .push(" = ")
                    .push_bind(*rank)
                    .push("::float4 AND p.id > ")
                    .push_bind(id)
                    .push("))");
            }
            Some(_) => anyhow::bail!("a sort-key cursor on a search by relevance"),
        }
        args.finish_page(&mut sql, "rank DESC, p.id ASC");
        let rows: Vec<(i64, f32)> = sql
            .build_query_as()
            .fetch_all(conn)
            .await
            .context("ranking a search")?;
        return Ok(rows
            .into_iter()
            .map(|(id, rank)| (id, SortValue::Rank(rank)))
            .collect());
    }
    // With typos: every full-text hit comes before the typo-only
    // (trigram) hits; within each group, the text rank plus the title's
    // similarity decides. The similarity is kept out of the order above
    // because it is the costly part: on a large catalog it made ranking
    // the hits of a common word several times slower.
    let mut sql = args.statement(TYPO_RANKED_IDS)?;
    match args.after.map(|a| (&a.value, a.id)) {
        None => {}
        Some((SortValue::TypoRank { full_text, score }, id)) => {
            // After (f, s, id) in the order (full_text DESC, score DESC, id ASC).
            sql.push(" AND (")
                .push(FULL_TEXT_MATCH)
                .push(" < ")
                .push_bind(*full_text)
                .push(" OR (")
                .push(FULL_TEXT_MATCH)
                .push(" = ")
                .push_bind(*full_text)
                .push(" AND (")
                .push(TYPO_SCORE)
                .push(" < ")
                .push_bind(*score)
                .push("::float4 OR (")
                .push(TYPO_SCORE)
                .push(" = ")
                .push_bind(*score)
                .push("::float4 AND p.id > ")
                .push_bind(id)
                .push("))))");
        }
        Some(_) => anyhow::bail!("a sort-key cursor on a typo search by relevance"),
    }
    args.finish_page(&mut sql, "full_text DESC, score DESC, p.id ASC");
    let rows: Vec<(i64, bool, f32)> = sql
        .build_query_as()
        .fetch_all(conn)
        .await
        .context("ranking a search")?;
    Ok(rows
        .into_iter()
        .map(|(id, full_text, score)| (id, SortValue::TypoRank { full_text, score }))
        .collect())
}

/// The rows of the given products, in the order of `ids`; one deleted since
/// its id was read is left out.
async fn rows_in_order(conn: &mut PgConnection, ids: &[i64]) -> anyhow::Result<Vec<ProductRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = QueryBuilder::new(PRODUCT_ROWS);
    sql.push(" WHERE p.id = ANY(")
        .push_bind(ids)
        .push(") AND p.deleted_at IS NULL");
    let mut rows = sql
        .build_query_as::<ProductRow>()
        .fetch_all(conn)
        .await
        .context("loading a page of products")?;
    let position: HashMap<i64, usize> = ids.iter().enumerate().map(|(n, id)| (*id, n)).collect();
    rows.sort_by_key(|row| position.get(&row.id).copied());
    Ok(rows)
}

/// The given live products with their images and reviews, in the order of `ids` (a search
/// index's page); one deleted since its id was read is left out.
pub async fn products_in_order(db: &PgPool, ids: &[i64]) -> anyhow::Result<Vec<Product>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = db.acquire().await.context("acquiring a connection")?;
    let rows = rows_in_order(&mut conn, ids).await?;
    attach_details(&mut conn, rows).await
}

// ------------------------------------------------------- the search index's feed

/// What the search index (services/catalog/search_index.rs) holds of a product.
pub struct SearchableProduct {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub brand: Option<String>,
    pub category: String,
    pub price_cents: i64,
    pub rating_hundredths: i64,
    pub in_stock: bool,
    /// False for a deleted product: the index drops it.
    pub live: bool,
}

/// A read-only transaction whose statements all see one snapshot (building the index reads
/// the catalog in several statements).
pub async fn begin_snapshot(db: &PgPool) -> anyhow::Result<sqlx::Transaction<'static, Postgres>> {
    let mut tx = db.begin().await.context("starting a snapshot")?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .context("starting a snapshot")?;
    Ok(tx)
}

/// `pg_current_snapshot()` as text: which transactions the caller's snapshot sees.
pub async fn current_snapshot(conn: &mut PgConnection) -> anyhow::Result<String> {
    sqlx::query_scalar!(r#"SELECT pg_current_snapshot()::text AS "snapshot!""#)
        .fetch_one(conn)
        .await
        .context("reading the current snapshot")
}

/// Up to `limit` live products after id `after`, by id.
pub async fn searchable_products(
    conn: &mut PgConnection,
    after: i64,
    limit: i64,
) -> anyhow::Result<Vec<SearchableProduct>> {
    sqlx::query_as!(
        SearchableProduct,
        r#"
        SELECT p.id, p.title, p.description, p.brand, c.slug AS category, p.price_cents,
               (p.rating * 100)::int8 AS "rating_hundredths!", p.stock > 0 AS "in_stock!",
               p.deleted_at IS NULL AS "live!"
        FROM products p JOIN categories c ON c.id = p.category_id
        WHERE p.deleted_at IS NULL AND p.id > $1
        ORDER BY p.id
        LIMIT $2
        "#,
        after,
        limit
    )
    .fetch_all(conn)
    .await
    .context("reading products to index")
}

/// The products whose searchable state changed in transactions that snapshot `since` did not
/// see (migrations/20261207000600_catalog_search_index.sql says why this misses none), deleted
/// ones included, and the snapshot they were read in. One statement, so one snapshot for both
/// (`pg_current_snapshot()` is the statement's at READ COMMITTED); with no change, one row of
/// NULLs carries the snapshot. The upper bound selects nothing more (no transaction from
/// the current snapshot's xmax on is visible in it) but makes the condition a range to the
/// planner: with a lower bound alone it estimated a third of the catalog, and JIT-compiled the
/// statement, 20-400 ms a search on 1,000,000 products, against 0.1 ms.
pub async fn searchable_changes(
    db: &PgPool,
    since: &str,
) -> anyhow::Result<(String, Vec<SearchableProduct>)> {
    let rows = sqlx::query!(
        r#"
        SELECT s.snapshot AS "snapshot!", p.id AS "id?", p.title AS "title?",
               p.description AS "description?", p.brand, c.slug AS "category?",
               p.price_cents AS "price_cents?",
               (p.rating * 100)::int8 AS "rating_hundredths?", p.stock > 0 AS "in_stock?",
               p.deleted_at IS NULL AS "live?"
        FROM (SELECT pg_current_snapshot()::text AS snapshot) s
        LEFT JOIN (products p JOIN categories c ON c.id = p.category_id)
               ON p.search_xid >= pg_snapshot_xmin($1::text::pg_snapshot)
              AND p.search_xid < pg_snapshot_xmax(pg_current_snapshot())
              AND NOT pg_visible_in_snapshot(p.search_xid, $1::text::pg_snapshot)
        "#,
        since
    )
    .fetch_all(db)
    .await
    .context("reading the products changed since the last snapshot")?;
    let snapshot = rows
        .first()
        .map(|r| r.snapshot.clone())
        .context("no snapshot read")?;
    let changed = rows
        .into_iter()
        .filter_map(|r| {
            Some(SearchableProduct {
                id: r.id?,
                title: r.title?,
                description: r.description?,
                brand: r.brand,
                category: r.category?,
                price_cents: r.price_cents?,
                rating_hundredths: r.rating_hundredths?,
                in_stock: r.in_stock?,
                live: r.live?,
            })
        })
        .collect();
    Ok((snapshot, changed))
}

/// Loads the images and reviews of `rows` (one query each) and assembles
/// the products, keeping the order of `rows`.
async fn attach_details(
    db: &mut PgConnection,
    rows: Vec<ProductRow>,
) -> anyhow::Result<Vec<Product>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let mut images = images_of(&mut *db, &ids).await?;
    let mut reviews = reviews_of(&mut *db, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let id = row.id;
            row.into_product(
                images.remove(&id).unwrap_or_default(),
                reviews.remove(&id).unwrap_or_default(),
            )
        })
        .collect())
}

async fn images_of(
    db: impl PgExecutor<'_>,
    ids: &[i64],
) -> anyhow::Result<HashMap<i64, Vec<String>>> {
    let rows = sqlx::query!(
        r#"
        SELECT product_id, url
        FROM product_images
        WHERE product_id = ANY($1)
        ORDER BY product_id, position
        "#,
        ids
    )
    .fetch_all(db)
    .await
    .context("loading product images")?;
    let mut by_product: HashMap<i64, Vec<String>> = HashMap::new();
    for row in rows {
        by_product.entry(row.product_id).or_default().push(row.url);
    }
    Ok(by_product)
}

async fn reviews_of(
    db: impl PgExecutor<'_>,
    ids: &[i64],
) -> anyhow::Result<HashMap<i64, Vec<Review>>> {
    let rows = sqlx::query_as!(
        Review,
        r#"
        SELECT id, product_id, rating, comment, date, reviewer_name, reviewer_email,
               verified_purchase
        FROM reviews
        WHERE product_id = ANY($1)
        ORDER BY product_id, id
        "#,
        ids
    )
    .fetch_all(db)
    .await
    .context("loading product reviews")?;
    let mut by_product: HashMap<i64, Vec<Review>> = HashMap::new();
    for review in rows {
        by_product
            .entry(review.product_id)
            .or_default()
            .push(review);
    }
    Ok(by_product)
}

/// Inserts a product (without its gallery) and returns its id. A product
/// without a SKU gets `ECOM-<id>`.
#[tracing::instrument(skip_all)]
pub async fn insert_product(
    db: impl PgExecutor<'_>,
    product: &NewProduct,
    category_id: i64,
) -> Result<i64, sqlx::Error> {
    let extras = &product.extras;
    let dimensions = extras.dimensions;
    sqlx::query_scalar!(
        r#"
        WITH new_product AS (
            SELECT nextval(pg_get_serial_sequence('products', 'id')) AS id
        )
        INSERT INTO products
            (id, title, description, price_cents, discount_percentage, brand, stock,
             category_id, thumbnail, sku, tags, weight, width, height, depth,
             warranty_information, shipping_information, return_policy,
             minimum_order_quantity)
        SELECT id, $1, $2, $3, $4::float8, $5, $6, $7, $8,
               COALESCE($9, 'ECOM-' || lpad(id::text, 8, '0')),
               COALESCE($10::text[], '{}'),
               $11::float8, $12::float8, $13::float8, $14::float8,
               NULLIF($15, ''), NULLIF($16, ''), NULLIF($17, ''),
               COALESCE($18, 1)
        FROM new_product
        RETURNING id
        "#,
        product.title.as_str(),
        product.description.as_str(),
        product.price.cents(),
        product.discount_percentage.value(),
        product.brand.as_str(),
        product.stock.units(),
        category_id,
        product.thumbnail.as_str(),
        extras.sku.as_ref().map(|s| s.as_str()),
        extras.tags.as_deref(),
        extras.weight.map(|w| w.value()),
        dimensions.map(|d| d.width.value()),
        dimensions.map(|d| d.height.value()),
        dimensions.map(|d| d.depth.value()),
        extras.warranty_information.as_ref().map(|t| t.as_str()),
        extras.shipping_information.as_ref().map(|t| t.as_str()),
        extras.return_policy.as_ref().map(|t| t.as_str()),
        extras.minimum_order_quantity.map(|m| m.units()),
    )
    .fetch_one(db)
    .await
}

/// Applies the present fields of `patch` to a live product; `false` if
/// there is no such product. Bumps `updated_at` (trigger) even when the
/// patch only touches the gallery. An empty text clears that text.
#[tracing::instrument(skip(db, patch))]
pub async fn update_product(
    db: impl PgExecutor<'_>,
    id: i64,
    patch: &ProductPatch,
    category_id: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let extras = &patch.extras;
    let dimensions = extras.dimensions;
    let updated = sqlx::query_scalar!(
        r#"
        UPDATE products SET
            title = COALESCE($2, title),
            description = COALESCE($3, description),
            price_cents = COALESCE($4, price_cents),
            discount_percentage = COALESCE($5::float8::numeric, discount_percentage),
            thumbnail = COALESCE($6, thumbnail),
            category_id = COALESCE($7, category_id),
            brand = COALESCE($8, brand),
            stock = COALESCE($9, stock),
            sku = COALESCE($10, sku),
            tags = COALESCE($11::text[], tags),
            weight = COALESCE($12::float8::numeric, weight),
            width = COALESCE($13::float8::numeric, width),
            height = COALESCE($14::float8::numeric, height),
            depth = COALESCE($15::float8::numeric, depth),
            warranty_information = CASE WHEN $16::text IS NULL THEN warranty_information
                                        ELSE NULLIF($16, '') END,
            shipping_information = CASE WHEN $17::text IS NULL THEN shipping_information
                                        ELSE NULLIF($17, '') END,
            return_policy = CASE WHEN $18::text IS NULL THEN return_policy
                                 ELSE NULLIF($18, '') END,
            minimum_order_quantity = COALESCE($19, minimum_order_quantity)
        WHERE id = $1 AND deleted_at IS NULL
        RETURNING id
        "#,
        id,
        patch.title.as_ref().map(|t| t.as_str()),
        patch.description.as_ref().map(|d| d.as_str()),
        patch.price.map(|p| p.cents()),
        patch.discount_percentage.map(|d| d.value()),
        patch.thumbnail.as_ref().map(ImageUrl::as_str),
        category_id,
        patch.brand.as_ref().map(|b| b.as_str()),
        patch.stock.map(|s| s.units()),
        extras.sku.as_ref().map(|s| s.as_str()),
        extras.tags.as_deref(),
        extras.weight.map(|w| w.value()),
        dimensions.map(|d| d.width.value()),
        dimensions.map(|d| d.height.value()),
        dimensions.map(|d| d.depth.value()),
        extras.warranty_information.as_ref().map(|t| t.as_str()),
        extras.shipping_information.as_ref().map(|t| t.as_str()),
        extras.return_policy.as_ref().map(|t| t.as_str()),
        extras.minimum_order_quantity.map(|m| m.units()),
    )
    .fetch_optional(db)
    .await?;
    Ok(updated.is_some())
}

/// Replaces a product's gallery with `images`, in order.
#[tracing::instrument(skip(db, images))]
pub async fn replace_images(
    db: &mut PgConnection,
    id: i64,
    images: &[ImageUrl],
) -> Result<(), sqlx::Error> {
    sqlx::query!(r#"DELETE FROM product_images WHERE product_id = $1"#, id)
        .execute(&mut *db)
        .await?;
    let urls: Vec<&str> = images.iter().map(ImageUrl::as_str).collect();
    sqlx::query!(
        r#"
        INSERT INTO product_images (product_id, position, url)
        SELECT $1, (image.ordinality - 1)::smallint, image.url
        FROM UNNEST($2::text[]) WITH ORDINALITY AS image (url, ordinality)
        "#,
        id,
        &urls as &[&str],
    )
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Marks a live product deleted; `None` if there is no such product.
#[tracing::instrument(skip(db))]
pub async fn soft_delete_product(
    db: impl PgExecutor<'_>,
    id: i64,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"
        UPDATE products SET deleted_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        RETURNING deleted_at AS "deleted_at!"
        "#,
        id
    )
    .fetch_optional(db)
    .await
}

// Stock reservations (super::reservations). The callers lock product rows in id order and
// hold one transaction per change; these statements only read and write.

/// Which of `ids` are live products, with their stock, locked (`FOR UPDATE`) in id order so
/// that two reservations of the same products queue rather than deadlock.
pub async fn lock_stock(conn: &mut PgConnection, ids: &[i64]) -> anyhow::Result<HashMap<i64, i32>> {
    let rows = sqlx::query!(
        r#"SELECT id, stock FROM products
           WHERE id = ANY($1) AND deleted_at IS NULL
           ORDER BY id FOR UPDATE"#,
        ids
    )
    .fetch_all(conn)
    .await
    .context("locking products to reserve")?;
    Ok(rows.into_iter().map(|r| (r.id, r.stock)).collect())
}

/// A product's stock before and after a change (a reservation, an admin's edit).
pub struct StockChange {
    pub id: i64,
    pub title: String,
    pub before: i32,
    pub after: i32,
}

impl StockChange {
    /// Whether the change took the stock from above `threshold` to at or below it: one
    /// low-stock alert per crossing, none while it stays low.
    pub fn crosses_below(&self, threshold: i32) -> bool {
        self.before > threshold && self.after <= threshold
    }
}

/// Takes `quantities[n]` units of product `ids[n]` where at least that many are left; the
/// products taken from, with their stock before and after.
pub async fn take_stock(
    conn: &mut PgConnection,
    ids: &[i64],
    quantities: &[i32],
) -> anyhow::Result<Vec<StockChange>> {
    let rows = sqlx::query!(
        r#"UPDATE products p SET stock = p.stock - l.quantity
           FROM UNNEST($1::bigint[], $2::int[]) AS l(id, quantity)
           WHERE p.id = l.id AND p.stock >= l.quantity
           RETURNING p.id, p.title, p.stock AS "after!", l.quantity AS "quantity!""#,
        ids,
        quantities
    )
    .fetch_all(conn)
    .await
    .context("taking reserved stock")?;
    Ok(rows
        .into_iter()
        .map(|r| StockChange {
            id: r.id,
            title: r.title,
            before: r.after + r.quantity,
            after: r.after,
        })
        .collect())
}

/// Records reservation `key` of `quantities[n]` units of `ids[n]`, expiring after
/// `ttl_seconds`; its expiry. Fails on `stock_reservations_pkey` when `key` already holds
/// one of these products (see [`is_duplicate_reservation`]).
pub async fn insert_reservation(
    conn: &mut PgConnection,
    key: &str,
    ids: &[i64],
    quantities: &[i32],
    ttl_seconds: i32,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let expires_at = sqlx::query_scalar!(
        r#"INSERT INTO stock_reservations (order_key, product_id, quantity, expires_at)
           SELECT $1, l.id, l.quantity, now() + make_interval(secs => $4)
           FROM UNNEST($2::bigint[], $3::int[]) AS l(id, quantity)
           RETURNING expires_at"#,
        key,
        ids,
        quantities,
        f64::from(ttl_seconds)
    )
    .fetch_all(conn)
    .await?;
    Ok(expires_at.into_iter().next())
}

/// Whether `err` is [`insert_reservation`] meeting a reservation under the same key.
pub fn is_duplicate_reservation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.constraint() == Some("stock_reservations_pkey"))
}

/// Where a stored reservation stands.
pub struct ReservationRow {
    /// `reserved`, `committed` or `released` (the table's CHECK allows no other).
    pub status: String,
    /// When its earliest line expires.
    pub expires_at: DateTime<Utc>,
}

/// The reservation under `key`, if there is one.
pub async fn find_reservation(
    db: impl PgExecutor<'_>,
    key: &str,
) -> anyhow::Result<Option<ReservationRow>> {
    sqlx::query_as!(
        ReservationRow,
        r#"SELECT status, min(expires_at) AS "expires_at!"
           FROM stock_reservations WHERE order_key = $1 GROUP BY status"#,
        key
    )
    .fetch_optional(db)
    .await
    .with_context(|| format!("reading reservation {key}"))
}

/// Moves reservation `key` from reserved to committed; a no-op in any other state.
pub async fn commit_reservation(db: impl PgExecutor<'_>, key: &str) -> anyhow::Result<()> {
    sqlx::query!(
        "UPDATE stock_reservations SET status = 'committed' WHERE order_key = $1 AND status = 'reserved'",
        key
    )
    .execute(db)
    .await
    .with_context(|| format!("committing reservation {key}"))?;
    Ok(())
}

/// Moves reservation `key` from reserved or committed to released; the units of each product
/// it held (none when it was released already).
pub async fn release_reservation(
    conn: &mut PgConnection,
    key: &str,
) -> anyhow::Result<BTreeMap<i64, i32>> {
    let released = sqlx::query!(
        r#"UPDATE stock_reservations SET status = 'released'
           WHERE order_key = $1 AND status IN ('reserved', 'committed')
           RETURNING product_id, quantity"#,
        key
    )
    .fetch_all(conn)
    .await
    .with_context(|| format!("releasing reservation {key}"))?;
    Ok(released
        .into_iter()
        .map(|r| (r.product_id, r.quantity))
        .collect())
}

/// Releases every reserved line that expired before `now`: the number of lines, and the
/// units of each product they held.
pub async fn release_expired_reservations(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> anyhow::Result<(u64, BTreeMap<i64, i32>)> {
    let released = sqlx::query!(
        r#"UPDATE stock_reservations SET status = 'released'
           WHERE status = 'reserved' AND expires_at < $1
           RETURNING product_id, quantity"#,
        now
    )
    .fetch_all(conn)
    .await
    .context("releasing expired reservations")?;
    let count = released.len() as u64;
    let mut lines: BTreeMap<i64, i32> = BTreeMap::new();
    for r in released {
        *lines.entry(r.product_id).or_default() += r.quantity;
    }
    Ok((count, lines))
}

/// Gives units back, product by product in id order (the order reservations lock in).
pub async fn restock(conn: &mut PgConnection, lines: &BTreeMap<i64, i32>) -> anyhow::Result<()> {
    for (id, quantity) in lines {
        sqlx::query!(
            "UPDATE products SET stock = stock + $2 WHERE id = $1",
            id,
            quantity
        )
        .execute(&mut *conn)
        .await
        .with_context(|| format!("restocking product {id}"))?;
    }
    Ok(())
}

/// What an order needs to know of a product to price it.
pub struct PricingRow {
    pub id: i64,
    pub title: String,
    pub price_cents: i64,
    pub discount_basis_points: i32,
    pub thumbnail: String,
    pub stock: i32,
    /// Kilograms per unit, 0 when unknown.
    pub weight: f64,
    pub category: String,
}

/// The live products among `ids`, by id.
pub async fn products_for_pricing(
    db: impl PgExecutor<'_>,
    ids: &[i64],
) -> anyhow::Result<Vec<PricingRow>> {
    sqlx::query_as!(
        PricingRow,
        r#"SELECT p.id, p.title, p.price_cents, p.thumbnail, p.stock,
                  round(p.discount_percentage * 100)::int AS "discount_basis_points!",
                  coalesce(p.weight, 0)::float8 AS "weight!", c.slug AS category
           FROM products p JOIN categories c ON c.id = p.category_id
           WHERE p.id = ANY($1) AND p.deleted_at IS NULL ORDER BY p.id"#,
        ids
    )
    .fetch_all(db)
    .await
    .context("loading products to price")
}

// ---------------------------------------------------------------- reviews

/// Locks product `id` against other review changes until the transaction ends, so the
/// rating each one recomputes sees every committed review (two concurrent reviews cannot
/// each miss the other's). `Some(true)` for a live product, `Some(false)` for a deleted one.
pub async fn lock_product_for_reviews(
    db: &mut PgConnection,
    id: i64,
) -> anyhow::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"SELECT deleted_at IS NULL AS "live!" FROM products WHERE id = $1 FOR NO KEY UPDATE"#,
        id
    )
    .fetch_optional(db)
    .await
    .with_context(|| format!("locking product {id} for a review"))
}

/// The product and author of review `id`, if it exists (`None` author: a seeded review).
pub async fn review_owner(
    db: &mut PgConnection,
    id: i64,
) -> anyhow::Result<Option<(i64, Option<i64>)>> {
    let row = sqlx::query!("SELECT product_id, user_id FROM reviews WHERE id = $1", id)
        .fetch_optional(db)
        .await
        .with_context(|| format!("loading review {id}"))?;
    Ok(row.map(|r| (r.product_id, r.user_id)))
}

/// Inserts a review by `user_id`; a second review of the product by the same user fails on
/// `reviews_one_per_user_product` (the caller maps it to REVIEW_EXISTS).
#[allow(clippy::too_many_arguments)]
pub async fn insert_review(
    db: &mut PgConnection,
    product_id: i64,
    user_id: i64,
    review: &NewReview,
    reviewer_name: &str,
    reviewer_email: &str,
    verified_purchase: bool,
    now: DateTime<Utc>,
) -> Result<Review, sqlx::Error> {
    sqlx::query_as!(
        Review,
        r#"
        INSERT INTO reviews (product_id, user_id, rating, comment, date, reviewer_name,
                             reviewer_email, verified_purchase, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
        RETURNING id, product_id, rating, comment, date, reviewer_name, reviewer_email,
                  verified_purchase
        "#,
        product_id,
        user_id,
        review.stars.get(),
        review.comment.as_str(),
        now.date_naive(),
        reviewer_name,
        reviewer_email,
        verified_purchase,
        now
    )
    .fetch_one(db)
    .await
}

/// Applies `edit` to review `id` of `user_id`; `None` when it is not theirs.
pub async fn update_review(
    db: &mut PgConnection,
    id: i64,
    user_id: i64,
    edit: &ReviewEdit,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Review>> {
    sqlx::query_as!(
        Review,
        r#"
        UPDATE reviews
        SET rating = COALESCE($3, rating), comment = COALESCE($4, comment), updated_at = $5
        WHERE id = $1 AND user_id = $2
        RETURNING id, product_id, rating, comment, date, reviewer_name, reviewer_email,
                  verified_purchase
        "#,
        id,
        user_id,
        edit.stars.map(|s| s.get()),
        edit.comment.as_ref().map(|c| c.as_str()),
        now
    )
    .fetch_optional(db)
    .await
    .with_context(|| format!("updating review {id}"))
}

/// Deletes review `id` and answers it as it was.
pub async fn delete_review(db: &mut PgConnection, id: i64) -> anyhow::Result<Option<Review>> {
    sqlx::query_as!(
        Review,
        r#"
        DELETE FROM reviews WHERE id = $1
        RETURNING id, product_id, rating, comment, date, reviewer_name, reviewer_email,
                  verified_purchase
        "#,
        id
    )
    .fetch_optional(db)
    .await
    .with_context(|| format!("deleting review {id}"))
}

/// Sets product `id`'s rating to the mean of its reviews, two decimals (0 with none).
pub async fn refresh_rating(db: &mut PgConnection, id: i64) -> anyhow::Result<()> {
    sqlx::query!(
        r#"
        UPDATE products
        SET rating = COALESCE((SELECT round(avg(rating), 2) FROM reviews WHERE product_id = $1), 0)
        WHERE id = $1
        "#,
        id
    )
    .execute(db)
    .await
    .with_context(|| format!("recomputing the rating of product {id}"))?;
    Ok(())
}

/// Whether `user_id` has received product `product_id` (a delivered order).
pub async fn has_purchased(
    db: &mut PgConnection,
    user_id: i64,
    product_id: i64,
) -> anyhow::Result<bool> {
    let found = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM catalog_purchases WHERE user_id = $1 AND product_id = $2) AS "found!""#,
        user_id,
        product_id
    )
    .fetch_one(db)
    .await
    .context("reading a purchase")?;
    Ok(found)
}

/// Records that `user_id` received `product_ids`, and marks their reviews of them as
/// verified purchases; answers the products whose reviews changed.
pub async fn record_purchases(
    db: &mut PgConnection,
    user_id: i64,
    product_ids: &[i64],
    at: DateTime<Utc>,
) -> anyhow::Result<Vec<i64>> {
    sqlx::query!(
        r#"
        INSERT INTO catalog_purchases (user_id, product_id, first_delivered_at)
        SELECT $1, product_id, $3 FROM unnest($2::bigint[]) AS t(product_id)
        ON CONFLICT (user_id, product_id) DO NOTHING
        "#,
        user_id,
        product_ids,
        at
    )
    .execute(&mut *db)
    .await
    .context("recording purchases")?;
    let changed = sqlx::query_scalar!(
        r#"
        UPDATE reviews SET verified_purchase = true
        WHERE user_id = $1 AND product_id = ANY($2) AND NOT verified_purchase
        RETURNING product_id
        "#,
        user_id,
        product_ids
    )
    .fetch_all(&mut *db)
    .await
    .context("marking verified reviews")?;
    Ok(changed)
}

// ---------------------------------------------------------------- wishlists

/// Serializes the wishlist writes of `user_id` until the transaction ends, so concurrent
/// adds cannot together pass the bound on its size.
pub async fn lock_wishlist(db: &mut PgConnection, user_id: i64) -> anyhow::Result<()> {
    let key = format!("catalog.wishlist:{user_id}");
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)
        .execute(db)
        .await
        .context("locking a wishlist")?;
    Ok(())
}

/// Whether product `id` exists and is not deleted.
pub async fn product_is_live(db: impl PgExecutor<'_>, id: i64) -> anyhow::Result<bool> {
    let live = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM products WHERE id = $1 AND deleted_at IS NULL) AS "live!""#,
        id
    )
    .fetch_one(db)
    .await
    .with_context(|| format!("checking product {id}"))?;
    Ok(live)
}

/// How many live products `user_id`'s wishlist holds.
pub async fn wishlist_size(db: impl PgExecutor<'_>, user_id: i64) -> anyhow::Result<i64> {
    let n = sqlx::query_scalar!(
        r#"
        SELECT count(*) AS "n!" FROM wishlist_items w
        JOIN products p ON p.id = w.product_id AND p.deleted_at IS NULL
        WHERE w.user_id = $1
        "#,
        user_id
    )
    .fetch_one(db)
    .await
    .context("counting a wishlist")?;
    Ok(n)
}

/// Adds `product_id` to `user_id`'s wishlist; false when it is there already.
pub async fn insert_wishlist_item(
    db: &mut PgConnection,
    user_id: i64,
    product_id: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let done = sqlx::query!(
        r#"
        INSERT INTO wishlist_items (user_id, product_id, added_at) VALUES ($1, $2, $3)
        ON CONFLICT (user_id, product_id) DO NOTHING
        "#,
        user_id,
        product_id,
        now
    )
    .execute(db)
    .await
    .context("adding to a wishlist")?;
    Ok(done.rows_affected() == 1)
}

struct WishlistRow {
    added_at: DateTime<Utc>,
    id: i64,
    title: String,
    price_cents: i64,
    discount_percentage: f64,
    thumbnail: String,
    stock: i32,
    availability_status: String,
    rating: f64,
    category: String,
    brand: Option<String>,
}

impl From<WishlistRow> for WishlistEntry {
    fn from(row: WishlistRow) -> Self {
        WishlistEntry {
            added_at: row.added_at,
            product: ProductSummary {
                id: row.id,
                title: row.title,
                price_cents: row.price_cents,
                discount_percentage: row.discount_percentage,
                thumbnail: row.thumbnail,
                stock: row.stock,
                availability_status: row.availability_status,
                rating: row.rating,
                category: row.category,
                brand: row.brand,
            },
        }
    }
}

/// The entry of `product_id` in `user_id`'s wishlist, if its product is live.
pub async fn wishlist_entry(
    db: impl PgExecutor<'_>,
    user_id: i64,
    product_id: i64,
) -> anyhow::Result<Option<WishlistEntry>> {
    let row = sqlx::query_as!(
        WishlistRow,
        r#"
        SELECT w.added_at, p.id, p.title, p.price_cents,
               p.discount_percentage::float8 AS "discount_percentage!",
               p.thumbnail, p.stock, p.availability_status AS "availability_status!",
               p.rating::float8 AS "rating!", c.slug AS category, p.brand
        FROM wishlist_items w
        JOIN products p ON p.id = w.product_id AND p.deleted_at IS NULL
        JOIN categories c ON c.id = p.category_id
        WHERE w.user_id = $1 AND w.product_id = $2
        "#,
        user_id,
        product_id
    )
    .fetch_optional(db)
    .await
    .context("loading a wishlist entry")?;
    Ok(row.map(WishlistEntry::from))
}

/// A page of `user_id`'s wishlist, newest first, live products only.
pub async fn wishlist_page(
    db: impl PgExecutor<'_>,
    user_id: i64,
    page: WishlistPage,
) -> anyhow::Result<Vec<WishlistEntry>> {
    let rows = sqlx::query_as!(
        WishlistRow,
        r#"
        SELECT w.added_at, p.id, p.title, p.price_cents,
               p.discount_percentage::float8 AS "discount_percentage!",
               p.thumbnail, p.stock, p.availability_status AS "availability_status!",
               p.rating::float8 AS "rating!", c.slug AS category, p.brand
        FROM wishlist_items w
        JOIN products p ON p.id = w.product_id AND p.deleted_at IS NULL
        JOIN categories c ON c.id = p.category_id
        WHERE w.user_id = $1
        ORDER BY w.added_at DESC, w.product_id DESC
        LIMIT $2 OFFSET $3
        "#,
        user_id,
        page.limit,
        page.skip
    )
    .fetch_all(db)
    .await
    .context("loading a wishlist page")?;
    Ok(rows.into_iter().map(WishlistEntry::from).collect())
}

/// Removes `product_id` from `user_id`'s wishlist; false when it was not there.
pub async fn delete_wishlist_item(
    db: &mut PgConnection,
    user_id: i64,
    product_id: i64,
) -> anyhow::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM wishlist_items WHERE user_id = $1 AND product_id = $2",
        user_id,
        product_id
    )
    .execute(db)
    .await
    .context("removing from a wishlist")?;
    Ok(done.rows_affected() == 1)
}
