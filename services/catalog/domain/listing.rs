//! What a product listing (GET /products, /products/search, /products/category/{category})
//! asks for: a page, a sort, and filters.

use super::Violations;
use super::cursor::{After, QueryShape};
use crate::money;

/// A page of a listing: `skip` rows, then at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    skip: i64,
    limit: i64,
    /// `limit=0`: every match, up to `limit` (LIST_ALL_MAX).
    all: bool,
}

impl Page {
    /// The page size when the client gives none (12.4).
    pub const DEFAULT_LIMIT: i64 = 10;
    /// The largest explicit page; larger requests are clamped to it (12.4).
    pub const MAX_LIMIT: i64 = 100;
    /// How deep `skip` may go: `skip + limit` at most this (issue #16). An offset makes
    /// PostgreSQL read and throw away every skipped row (with its whole row, as the page
    /// reads them), so its cost grows with the depth; 10,000 keeps the deepest offset page to
    /// a few milliseconds on 1,000,000 products (measured: see the report / BENCHMARKS), is
    /// 100 pages of the largest size, more than any person pages through, and is the window
    /// Elasticsearch (`index.max_result_window`) bounds deep paging to for the same reason.
    /// Deeper pages take `cursor`, whose cost does not depend on the depth.
    pub const MAX_WINDOW: i64 = 10_000;

    /// Applies the defaults and the clamp; negative values are violations. `limit=0` asks
    /// for every match (DummyJSON), up to `list_all_max` (LIST_ALL_MAX): the answer's
    /// `limit` says how many were allowed, so a client sees when it got fewer than `total`.
    pub fn parse(
        skip: Option<i64>,
        limit: Option<i64>,
        list_all_max: i64,
        violations: &mut Violations,
    ) -> Option<Page> {
        let skip = match skip {
            None => Some(0),
            Some(skip) if skip >= 0 => Some(skip),
            Some(_) => {
                violations.push("skip", "must be 0 or more");
                None
            }
        };
        let limit_asked = limit;
        let limit = match limit {
            None => Some(Self::DEFAULT_LIMIT),
            Some(0) => Some(list_all_max.max(1)),
            Some(limit) if limit > 0 => Some(limit.min(Self::MAX_LIMIT)),
            Some(_) => {
                violations.push("limit", "must be 0 or more");
                None
            }
        };
        let (skip, limit) = (skip?, limit?);
        // The first page is never deep, whatever LIST_ALL_MAX makes `limit=0` answer.
        if skip > 0 && skip.saturating_add(limit) > Self::MAX_WINDOW {
            violations.push(
                "skip",
                format!(
                    "skip + limit must be at most {} (here {}); to page deeper, pass the \
                     nextCursor of the previous page as cursor",
                    Self::MAX_WINDOW,
                    skip.saturating_add(limit)
                ),
            );
            return None;
        }
        Some(Page {
            skip,
            limit,
            all: matches!(limit_asked, Some(0)),
        })
    }

    /// Rows to skip.
    pub fn skip(self) -> i64 {
        self.skip
    }

    /// The most rows the page may hold.
    pub fn limit(self) -> i64 {
        self.limit
    }

    /// What the answer reports as `limit`, given the rows it holds: the page size, except
    /// for `limit=0`, which reports how many it answered, as DummyJSON does (so a capped
    /// answer shows LIST_ALL_MAX, fewer than `total`).
    pub fn reported_limit(self, rows: usize) -> i64 {
        if self.all {
            i64::try_from(rows).unwrap_or(i64::MAX)
        } else {
            self.limit
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Page {
            skip: 0,
            limit: Self::DEFAULT_LIMIT,
            all: false,
        }
    }
}

/// The fields a listing may be sorted by (`sortBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Price,
    Rating,
    Title,
}

impl SortKey {
    /// `price`, `rating` or `title`; an absent or empty value is no sort.
    pub fn parse(raw: Option<&str>) -> Result<Option<SortKey>, String> {
        match raw.map(str::trim).unwrap_or_default() {
            "" => Ok(None),
            "price" => Ok(Some(SortKey::Price)),
            "rating" => Ok(Some(SortKey::Rating)),
            "title" => Ok(Some(SortKey::Title)),
            _ => Err("must be one of price, rating, title".to_owned()),
        }
    }
}

/// Ascending or descending (`order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

impl SortOrder {
    /// `asc` or `desc`; absent or empty is `asc`.
    pub fn parse(raw: Option<&str>) -> Result<SortOrder, String> {
        match raw.map(str::trim).unwrap_or_default() {
            "" | "asc" => Ok(SortOrder::Asc),
            "desc" => Ok(SortOrder::Desc),
            _ => Err("must be asc or desc".to_owned()),
        }
    }
}

/// Inclusive price bounds in cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriceRange {
    pub min_cents: Option<i64>,
    pub max_cents: Option<i64>,
}

impl PriceRange {
    /// From `minPrice` / `maxPrice` in currency units.
    pub fn parse(
        min: Option<f64>,
        max: Option<f64>,
        violations: &mut Violations,
    ) -> Option<PriceRange> {
        let min_cents = min.map(|v| {
            violations.check(
                "minPrice",
                money::from_wire_non_negative(v).map_err(|e| e.to_string()),
            )
        });
        let max_cents = max.map(|v| {
            violations.check(
                "maxPrice",
                money::from_wire_non_negative(v).map_err(|e| e.to_string()),
            )
        });
        let (min_cents, max_cents) = match (min_cents, max_cents) {
            (Some(None), _) | (_, Some(None)) => return None,
            (min, max) => (min.flatten(), max.flatten()),
        };
        if let (Some(min), Some(max)) = (min_cents, max_cents)
            && max < min
        {
            violations.push("maxPrice", "must not be less than minPrice");
            return None;
        }
        Some(PriceRange {
            min_cents,
            max_cents,
        })
    }
}

/// Which products a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFilter {
    /// Only this category slug (GET /products/category/:category), compared
    /// as given (lower-cased): a slug of no category matches nothing.
    pub category: Option<String>,
    pub price: PriceRange,
    /// Brand, compared case-insensitively.
    pub brand: Option<String>,
    /// Only products with stock > 0.
    pub in_stock: bool,
}

/// A listing or search request, valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductQuery {
    /// Search text; `None` (or blank) lists everything.
    pub text: Option<String>,
    pub filter: ProductFilter,
    /// `None`: by id for listings, by relevance for searches.
    pub sort: Option<SortKey>,
    pub order: SortOrder,
    pub page: Page,
    /// `cursor`: the page starts after this row (keyset), instead of after `page.skip()` rows
    /// (which is then 0).
    pub after: Option<After>,
}

impl ProductQuery {
    /// 128 bits of SHA-256 of the whole query (its shape, page and cursor position), by the
    /// explicit encoding the cursor's fingerprint uses: the cache key of its page, so two
    /// queries never share a page. Hashed rather than written out, so that the key stays short
    /// whatever the search text, brand or cursor; not the `Debug` form, whose formatting was a
    /// quarter of a cached page's key cost (callgrind, docs/BENCHMARKS.md).
    pub fn digest(&self) -> [u8; 16] {
        use sha2::Digest as _;
        // Named, so that a field added to the query does not compile until it is encoded.
        let ProductQuery {
            text: _,
            filter: _,
            sort: _,
            order: _,
            page: Page { skip, limit, all },
            after,
        } = self;
        let mut h = sha2::Sha256::new();
        h.update(b"ecom.catalog.page.v1");
        self.shape().feed(&mut h);
        h.update(skip.to_be_bytes());
        h.update(limit.to_be_bytes());
        h.update([u8::from(*all)]);
        match after {
            None => h.update([0]),
            Some(after) => {
                let mut position = Vec::with_capacity(32);
                after.write_position(&mut position);
                h.update([1]);
                h.update(&position);
            }
        }
        let mut digest = [0; 16];
        digest.copy_from_slice(&h.finalize()[..16]);
        digest
    }

    /// The query apart from its page, which a cursor is bound to.
    pub fn shape(&self) -> QueryShape<'_> {
        QueryShape {
            text: self.text.as_deref(),
            filter: &self.filter,
            sort: self.sort,
            order: self.order,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(skip: Option<i64>, limit: Option<i64>) -> Result<Page, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(skip, limit, 1000, &mut violations);
        violations.finish(|| page.unwrap())
    }

    #[test]
    fn page_defaults() {
        let p = page(None, None).unwrap();
        assert_eq!((p.skip(), p.limit()), (0, 10));
    }

    #[test]
    fn page_limit_is_clamped_and_zero_means_all_up_to_the_bound() {
        assert_eq!(page(None, Some(1000)).unwrap().limit(), 100);
        assert_eq!(page(None, Some(100)).unwrap().limit(), 100);
        assert_eq!(page(None, Some(0)).unwrap().limit(), 1000);
        assert_eq!(page(None, Some(1)).unwrap().limit(), 1);
    }

    #[test]
    fn negative_paging_is_a_violation_per_field() {
        let violations = page(Some(-1), Some(-5)).unwrap_err();
        let fields: Vec<_> = violations
            .as_slice()
            .iter()
            .map(|(f, _)| f.as_str())
            .collect();
        assert_eq!(fields, ["skip", "limit"]);
    }

    #[test]
    fn skip_is_bounded_but_not_the_first_page() {
        assert_eq!(page(Some(9_990), Some(10)).unwrap().skip(), 9_990);
        assert_eq!(page(Some(9_900), Some(1000)).unwrap().limit(), 100);
        let violations = page(Some(9_991), Some(10)).unwrap_err();
        assert_eq!(violations.as_slice()[0].0, "skip");
        assert!(violations.as_slice()[0].1.contains("cursor"));
        assert!(page(Some(900_000), None).is_err());
        assert!(page(Some(i64::MAX), Some(100)).is_err());
        // `limit=0` from the first row is allowed whatever LIST_ALL_MAX is.
        let mut v = Violations::default();
        assert!(Page::parse(Some(0), Some(0), 50_000, &mut v).is_some());
    }

    #[test]
    fn sort_keys() {
        assert_eq!(SortKey::parse(None), Ok(None));
        assert_eq!(SortKey::parse(Some("")), Ok(None));
        assert_eq!(SortKey::parse(Some("price")), Ok(Some(SortKey::Price)));
        assert_eq!(SortKey::parse(Some("rating")), Ok(Some(SortKey::Rating)));
        assert_eq!(SortKey::parse(Some("title")), Ok(Some(SortKey::Title)));
        assert!(SortKey::parse(Some("stock")).is_err());
        assert!(SortKey::parse(Some("id; DROP TABLE products")).is_err());
    }

    #[test]
    fn sort_orders() {
        assert_eq!(SortOrder::parse(None), Ok(SortOrder::Asc));
        assert_eq!(SortOrder::parse(Some("desc")), Ok(SortOrder::Desc));
        assert!(SortOrder::parse(Some("up")).is_err());
    }

    #[test]
    fn price_ranges() {
        let mut v = Violations::default();
        let range = PriceRange::parse(Some(10.5), Some(20.0), &mut v).unwrap();
        assert_eq!(
            range,
            PriceRange {
                min_cents: Some(1050),
                max_cents: Some(2000)
            }
        );

        let mut v = Violations::default();
        assert!(PriceRange::parse(Some(-1.0), None, &mut v).is_none());
        assert_eq!(v.as_slice()[0].0, "minPrice");

        let mut v = Violations::default();
        assert!(PriceRange::parse(Some(20.0), Some(10.0), &mut v).is_none());
        assert_eq!(v.as_slice()[0].0, "maxPrice");

        let mut v = Violations::default();
        assert_eq!(
            PriceRange::parse(None, None, &mut v),
            Some(PriceRange::default())
        );
    }

    /// Every part of a query makes its own page key; the same query, the same key.
    #[test]
    fn each_part_of_a_query_changes_its_digest() {
        use super::super::cursor::SortValue;
        let base = ProductQuery::default();
        let mut variants = vec![base.clone()];
        let mut with = |f: &dyn Fn(&mut ProductQuery)| {
            let mut q = base.clone();
            f(&mut q);
            variants.push(q);
        };
        with(&|q| q.text = Some("phone".into()));
        with(&|q| q.text = Some("phones".into()));
        with(&|q| q.filter.category = Some("phone".into()));
        with(&|q| q.filter.brand = Some("phone".into()));
        with(&|q| q.filter.price.min_cents = Some(100));
        with(&|q| q.filter.price.max_cents = Some(100));
        with(&|q| q.filter.in_stock = true);
        with(&|q| q.sort = Some(SortKey::Price));
        with(&|q| q.order = SortOrder::Desc);
        with(&|q| q.page = page(Some(10), None).unwrap());
        with(&|q| q.page = page(None, Some(20)).unwrap());
        with(&|q| {
            q.page = Page {
                all: true,
                ..Page::default()
            }
        });
        with(&|q| {
            q.after = Some(After {
                value: SortValue::Id,
                id: 10,
                typos: false,
            })
        });
        with(&|q| {
            q.after = Some(After {
                value: SortValue::Id,
                id: 11,
                typos: false,
            })
        });
        let digests: std::collections::HashSet<_> = variants.iter().map(|q| q.digest()).collect();
        assert_eq!(digests.len(), variants.len());
        assert_eq!(base.digest(), base.clone().digest());
    }
}
