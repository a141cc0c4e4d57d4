//! Cursor pagination of listings (issue #16, target 4): where the next page of a listing
//! starts, as the last row's sort key and id, carried by the client as an opaque token.
//!
//! Why a keyset and not an offset: `OFFSET n` makes PostgreSQL produce and throw away n rows,
//! so page 90,000 of a 1,000,000-product listing reads 900,000 of them; a keyset
//! (`(price_cents, id) > (last price, last id)`) starts in the index where the previous page
//! ended, whatever the depth. Rows inserted or deleted meanwhile move no other product across
//! a page boundary, which an offset does.
//!
//! The token is URL-safe base64 (no padding) of a small versioned binary structure:
//!
//! ```text
//! version u8 (1) | query fingerprint [u8; 8] | flags u8 | key tag u8 | key | id i64 | check [u8; 4]
//! ```
//!
//! - the fingerprint (SHA-256 of the query without its page, see [`ProductQuery::fingerprint`])
//!   binds the token to its query: a cursor of another sort, filter or search text is refused
//!   rather than silently answering a page of something else;
//! - the check (SHA-256 of the bytes before it) makes a garbled or hand-edited token a clear
//!   400 instead of a page from a random position.
//!
//! The check is not keyed (no server secret): a client that forges a consistent token can only
//! ask for "the rows after key K, id I" of its own query, a position any value of the filters
//! could express, every value is bound, and the decoded key is type-checked against the sort.
//! A keyed MAC would add a secret to share and rotate across instances for no protection of
//! data; cursors then also survive restarts, deploys and any instance answering.
//!
//! Clients must treat the token as opaque: the layout may change with the version byte, and an
//! older version is answered 400 (start again from the first page), as Stripe and GitHub do.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest as _;

use super::listing::{PriceRange, ProductFilter, SortKey, SortOrder};

/// The layout written by this version.
const VERSION: u8 = 1;
/// The longest token accepted: a title key of 200 characters (at most 800 bytes of UTF-8)
/// plus the fixed fields, in base64. Longer input is refused before decoding.
pub const MAX_CURSOR_CHARS: usize = 1200;

/// The sort key of the last row of a page, by the order it was listed in.
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    /// No sort: by id alone.
    Id,
    /// `sortBy=price`: the price in cents.
    Price(i64),
    /// `sortBy=rating`: the rating in hundredths (the column is NUMERIC(3, 2), so this is
    /// exact, where a float would not be).
    Rating(i64),
    /// `sortBy=title`.
    Title(String),
    /// A search by relevance: the text rank (`ts_rank`, a float4 computed per query; kept
    /// bit for bit so that equality with the recomputed rank holds).
    Rank(f32),
    /// A search by relevance with typo matches: whether the row matched the full text, then
    /// the rank plus the title's similarity (float4).
    TypoRank { full_text: bool, score: f32 },
}

impl Eq for SortValue {}

/// Where the next page starts: after the row with this sort value and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub value: SortValue,
    pub id: i64,
    /// Whether the listing matched titles within a typo (a search whose full text found few
    /// products): the next pages keep that choice, so that a page does not switch rankings
    /// (and totals) halfway through a search.
    pub typos: bool,
}

/// Why a cursor was refused; the message is the client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorError {
    /// Not a token this API gave out (garbled, truncated, edited, or of an older version).
    Malformed,
    /// A token of another query (sort, order, filters, category or search text changed).
    OtherQuery,
}

impl CursorError {
    pub fn message(&self) -> &'static str {
        match self {
            CursorError::Malformed => {
                "is not a cursor this API gave out (pass nextCursor of the previous page \
                 unchanged, or start again without cursor)"
            }
            CursorError::OtherQuery => {
                "belongs to another query: sortBy, order, filters, category and q must stay \
                 those of the page that gave it (start again without cursor)"
            }
        }
    }
}

/// What a query is, apart from its page: the fingerprint a cursor is bound to.
pub struct QueryShape<'a> {
    pub text: Option<&'a str>,
    pub filter: &'a ProductFilter,
    pub sort: Option<SortKey>,
    pub order: SortOrder,
}

impl QueryShape<'_> {
    /// SHA-256 (first 8 bytes) of an explicit, length-prefixed encoding of the query (not its
    /// `Debug` form, which may change with the code and would invalidate cursors on a
    /// deploy).
    pub fn fingerprint(&self) -> [u8; 8] {
        let mut h = sha2::Sha256::new();
        h.update(b"ecom.catalog.listing.v1");
        self.feed(&mut h);
        let digest = h.finalize();
        let mut fingerprint = [0; 8];
        fingerprint.copy_from_slice(&digest[..8]);
        fingerprint
    }

    /// Feeds `h` the explicit encoding of the shape: each value in a fixed order, texts
    /// length-prefixed, absent values told apart from present ones. Every field is named, so a
    /// field added to the filter does not compile until it is encoded here.
    pub(super) fn feed(&self, h: &mut sha2::Sha256) {
        fn text(h: &mut sha2::Sha256, value: Option<&str>) {
            match value {
                None => h.update([0]),
                Some(s) => {
                    h.update([1]);
                    h.update((s.len() as u64).to_be_bytes());
                    h.update(s.as_bytes());
                }
            }
        }
        fn number(h: &mut sha2::Sha256, value: Option<i64>) {
            match value {
                None => h.update([0]),
                Some(n) => {
                    h.update([1]);
                    h.update(n.to_be_bytes());
                }
            }
        }
        let ProductFilter {
            category,
            price: PriceRange {
                min_cents,
                max_cents,
            },
            brand,
            in_stock,
        } = self.filter;
        text(h, self.text);
        text(h, category.as_deref());
        number(h, *min_cents);
        number(h, *max_cents);
        text(h, brand.as_deref());
        h.update([u8::from(*in_stock)]);
        h.update([match self.sort {
            None => 0,
            Some(SortKey::Price) => 1,
            Some(SortKey::Rating) => 2,
            Some(SortKey::Title) => 3,
        }]);
        h.update([match self.order {
            SortOrder::Asc => 0,
            SortOrder::Desc => 1,
        }]);
    }

    /// Whether `value` is a key of this query's order: a forged token that passes the check
    /// must still not bind a title where the statement compares prices.
    fn accepts(&self, value: &SortValue, typos: bool) -> bool {
        match (self.sort, value) {
            (None, SortValue::Id) => self.text.is_none(),
            (None, SortValue::Rank(_)) => self.text.is_some() && !typos,
            (None, SortValue::TypoRank { .. }) => self.text.is_some() && typos,
            (Some(SortKey::Price), SortValue::Price(_))
            | (Some(SortKey::Rating), SortValue::Rating(_))
            | (Some(SortKey::Title), SortValue::Title(_)) => self.text.is_some() || !typos,
            _ => false,
        }
    }
}

impl After {
    /// The token for the page after this row of the query of `shape`.
    pub fn encode(&self, shape: &QueryShape<'_>) -> String {
        let mut bytes = Vec::with_capacity(40);
        bytes.push(VERSION);
        bytes.extend_from_slice(&shape.fingerprint());
        self.write_position(&mut bytes);
        let check = sha2::Sha256::digest(&bytes);
        bytes.extend_from_slice(&check[..4]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Appends the token's fields after the fingerprint: flags, the tagged key, the id.
    pub(super) fn write_position(&self, bytes: &mut Vec<u8>) {
        bytes.push(u8::from(self.typos));
        match &self.value {
            SortValue::Id => bytes.push(0),
            SortValue::Price(cents) => {
                bytes.push(1);
                bytes.extend_from_slice(&cents.to_be_bytes());
            }
            SortValue::Rating(hundredths) => {
                bytes.push(2);
                bytes.extend_from_slice(&hundredths.to_be_bytes());
            }
            SortValue::Title(title) => {
                bytes.push(3);
                // Titles are at most 200 characters (a CHECK of the table): 800 bytes.
                let len = u16::try_from(title.len()).unwrap_or(u16::MAX);
                bytes.extend_from_slice(&len.to_be_bytes());
                bytes.extend_from_slice(&title.as_bytes()[..usize::from(len)]);
            }
            SortValue::Rank(rank) => {
                bytes.push(4);
                bytes.extend_from_slice(&rank.to_bits().to_be_bytes());
            }
            SortValue::TypoRank { full_text, score } => {
                bytes.push(5);
                bytes.push(u8::from(*full_text));
                bytes.extend_from_slice(&score.to_bits().to_be_bytes());
            }
        }
        bytes.extend_from_slice(&self.id.to_be_bytes());
    }

    /// The position a token names, if it is one this API made for the query of `shape`.
    pub fn decode(token: &str, shape: &QueryShape<'_>) -> Result<After, CursorError> {
        if token.len() > MAX_CURSOR_CHARS {
            return Err(CursorError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token.as_bytes())
            .map_err(|_| CursorError::Malformed)?;
        let (body, check) = bytes
            .split_last_chunk::<4>()
            .ok_or(CursorError::Malformed)?;
        if sha2::Sha256::digest(body)[..4] != check[..] {
            return Err(CursorError::Malformed);
        }
        let mut r = Reader(body);
        if r.u8()? != VERSION {
            return Err(CursorError::Malformed);
        }
        let fingerprint: [u8; 8] = r.array()?;
        let typos = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(CursorError::Malformed),
        };
        let value = match r.u8()? {
            0 => SortValue::Id,
            1 => SortValue::Price(i64::from_be_bytes(r.array()?)),
            2 => SortValue::Rating(i64::from_be_bytes(r.array()?)),
            3 => {
                let len = usize::from(u16::from_be_bytes(r.array()?));
                let title =
                    std::str::from_utf8(r.take(len)?).map_err(|_| CursorError::Malformed)?;
                SortValue::Title(title.to_owned())
            }
            4 => SortValue::Rank(f32::from_bits(u32::from_be_bytes(r.array()?))),
            5 => {
                let full_text = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(CursorError::Malformed),
                };
                let score = f32::from_bits(u32::from_be_bytes(r.array()?));
                SortValue::TypoRank { full_text, score }
            }
            _ => return Err(CursorError::Malformed),
        };
        let id = i64::from_be_bytes(r.array()?);
        if !r.0.is_empty() {
            return Err(CursorError::Malformed);
        }
        if fingerprint != shape.fingerprint() {
            return Err(CursorError::OtherQuery);
        }
        if !shape.accepts(&value, typos) {
            return Err(CursorError::Malformed);
        }
        Ok(After { value, id, typos })
    }
}

/// Reads a token's fields in order; running short is a malformed token.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CursorError> {
        if self.0.len() < n {
            return Err(CursorError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CursorError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CursorError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape<'a>(
        text: Option<&'a str>,
        filter: &'a ProductFilter,
        sort: Option<SortKey>,
    ) -> QueryShape<'a> {
        QueryShape {
            text,
            filter,
            sort,
            order: SortOrder::Asc,
        }
    }

    #[test]
    fn every_key_round_trips() {
        let filter = ProductFilter::default();
        let cases = [
            (None, None, SortValue::Id, false),
            (None, Some(SortKey::Price), SortValue::Price(1999), false),
            (None, Some(SortKey::Rating), SortValue::Rating(456), false),
            (
                None,
                Some(SortKey::Title),
                SortValue::Title("Été à Paris, 東京".to_owned()),
                false,
            ),
            (Some("phone"), None, SortValue::Rank(0.0759_f32), false),
            (
                Some("iphnoe"),
                None,
                SortValue::TypoRank {
                    full_text: false,
                    score: 0.43,
                },
                true,
            ),
            (
                Some("phone"),
                Some(SortKey::Price),
                SortValue::Price(5),
                true,
            ),
        ];
        for (text, sort, value, typos) in cases {
            let shape = shape(text, &filter, sort);
            let after = After {
                value,
                id: 123_456_789,
                typos,
            };
            let token = after.encode(&shape);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "URL-safe: {token}"
            );
            assert_eq!(After::decode(&token, &shape), Ok(after));
        }
    }

    #[test]
    fn garbage_truncated_or_edited_tokens_are_malformed() {
        let filter = ProductFilter::default();
        let shape = shape(None, &filter, Some(SortKey::Price));
        let token = After {
            value: SortValue::Price(100),
            id: 7,
            typos: false,
        }
        .encode(&shape);
        for bad in [
            String::new(),
            "garbage!".to_owned(),
            "AAAA".to_owned(),
            token[..token.len() - 2].to_owned(),
            format!("{token}AA"),
            "A".repeat(MAX_CURSOR_CHARS + 1),
        ] {
            assert_eq!(
                After::decode(&bad, &shape),
                Err(CursorError::Malformed),
                "{bad}"
            );
        }
        // One byte changed (the id's last byte) fails the check.
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let n = bytes.len() - 5;
        bytes[n] ^= 1;
        let edited = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(After::decode(&edited, &shape), Err(CursorError::Malformed));
    }

    #[test]
    fn a_token_is_bound_to_its_query() {
        let filter = ProductFilter::default();
        let by_price = shape(None, &filter, Some(SortKey::Price));
        let token = After {
            value: SortValue::Price(100),
            id: 7,
            typos: false,
        }
        .encode(&by_price);

        let by_rating = shape(None, &filter, Some(SortKey::Rating));
        assert_eq!(
            After::decode(&token, &by_rating),
            Err(CursorError::OtherQuery)
        );
        let desc = QueryShape {
            order: SortOrder::Desc,
            ..shape(None, &filter, Some(SortKey::Price))
        };
        assert_eq!(After::decode(&token, &desc), Err(CursorError::OtherQuery));
        let searched = shape(Some("phone"), &filter, Some(SortKey::Price));
        assert_eq!(
            After::decode(&token, &searched),
            Err(CursorError::OtherQuery)
        );
        let category = ProductFilter {
            category: Some("laptops".to_owned()),
            ..ProductFilter::default()
        };
        let in_category = shape(None, &category, Some(SortKey::Price));
        assert_eq!(
            After::decode(&token, &in_category),
            Err(CursorError::OtherQuery)
        );
    }

    #[test]
    fn a_consistent_forgery_of_another_key_type_is_refused() {
        let filter = ProductFilter::default();
        let by_price = shape(None, &filter, Some(SortKey::Price));
        // Made "for" the price order but carrying a title key.
        let forged = After {
            value: SortValue::Title("x".to_owned()),
            id: 1,
            typos: false,
        }
        .encode(&by_price);
        assert_eq!(
            After::decode(&forged, &by_price),
            Err(CursorError::Malformed)
        );
    }
}
