//! A bounded memo of response transcodings: protobuf bytes -> JSON body.
//!
//! Why it is correct: turning a successful response into its JSON body is a
//! pure function of (the RPC, whose output type is fixed, the route's
//! `response_body` rule, the `select` selector, the response's protobuf
//! bytes). The JSON codec writes map keys sorted and reads no clock, locale
//! or request state, so equal inputs give equal bytes. The key holds the
//! *whole* protobuf bytes and a hit compares them in full: the hash only
//! picks a slot, it never decides a hit. What depends on the call rather than
//! on the bytes (the HTTP status from `x-http-status`, the declared response
//! headers copied from metadata, `x-request-id`) is computed for every call
//! by the caller and never stored here.
//!
//! Memory bound: the memo holds at most its configured number of bytes,
//! counting each entry as its protobuf key + selector + JSON body + a fixed
//! overhead (the stored buffers are exact-sized copies, so the count is what
//! they occupy); the cache evicts (S3-FIFO, `quick_cache`) to stay under it.
//! Responses whose protobuf is larger than [`MAX_ENTRY_PROTO_BYTES`] are not
//! memoized: large responses are rarely repeated byte for byte, and one of
//! them would push out many small hot ones.
//!
//! This module owns the memo only; the pipeline decides what is eligible
//! (JSON-marshaled bodies, not `google.api.HttpBody`).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Equivalent, OptionsBuilder, Weighter};

/// Protobuf responses larger than this are transcoded every time. 512 KiB holds a whole
/// 240-product catalogue page (`limit=0`, about 250 KiB), which a storefront refetches on
/// every filter change: transcoded each time, it was served at about 0.04 of a 10-item
/// page's rate in the same bench run (docs/BENCHMARKS.md).
pub(crate) const MAX_ENTRY_PROTO_BYTES: usize = 512 << 10;

/// The default total size of the memo (see
/// [`TranscoderBuilder::response_memo_bytes`](crate::TranscoderBuilder::response_memo_bytes)).
pub(crate) const DEFAULT_MEMO_BYTES: usize = 16 << 20;

/// What an entry costs besides its buffers: the key and value structs, the
/// cache's slot and the buffers' headers, rounded up.
const ENTRY_OVERHEAD: u64 = 128;

/// A shard should hold several of the largest entries (512 KiB of protobuf and its JSON,
/// about 1.2 MiB), so that one large response never evicts a whole shard: each gets at
/// least this much.
const MIN_SHARD_BYTES: usize = 4 << 20;

/// Counters of the memo, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseMemoStats {
    /// Responses answered from the memo.
    pub hits: u64,
    /// Eligible responses that were transcoded (and then memoized if small
    /// enough).
    pub misses: u64,
    /// Eligible responses too large to memoize (transcoded, not stored).
    pub too_large: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now, as weighed (see the module doc).
    pub bytes: u64,
}

/// The owned key of an entry.
#[derive(Clone)]
struct Key {
    rpc: Box<str>,
    /// The field number of the route's `response_body`, if any.
    response_body: Option<u32>,
    /// The `select` query parameter as decoded (the selector is parsed from
    /// exactly this text, so equal text means an equal selector).
    select: Option<Box<str>>,
    proto: Bytes,
}

/// The borrowed form of [`Key`] used for lookups, so that a hit allocates
/// nothing.
#[derive(Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    pub(crate) rpc: &'a str,
    pub(crate) response_body: Option<u32>,
    pub(crate) select: Option<&'a str>,
    pub(crate) proto: &'a [u8],
}

impl KeyRef<'_> {
    fn to_owned(self) -> Key {
        Key {
            rpc: self.rpc.into(),
            response_body: self.response_body,
            select: self.select.map(Into::into),
            // A copy, not a slice of the receive buffer, which may be larger
            // and would then be held (unweighed) for as long as the entry.
            proto: Bytes::copy_from_slice(self.proto),
        }
    }
}

impl Key {
    fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            rpc: &self.rpc,
            response_body: self.response_body,
            select: self.select.as_deref(),
            proto: &self.proto,
        }
    }
}

// `Key` and `KeyRef` must hash alike, so both hash through `KeyRef`.
impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rpc.hash(state);
        self.response_body.hash(state);
        self.select.hash(state);
        self.proto.hash(state);
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

impl PartialEq for KeyRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        // The bytes last: they are the longest to compare.
        self.response_body == other.response_body
            && self.rpc == other.rpc
            && self.select == other.select
            && self.proto == other.proto
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref() == other.as_ref()
    }
}

impl Eq for Key {}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self == key.as_ref()
    }
}

#[derive(Clone)]
struct ByteWeighter;

impl Weighter<Key, Bytes> for ByteWeighter {
    fn weight(&self, key: &Key, json: &Bytes) -> u64 {
        (key.rpc.len() + key.select.as_deref().map_or(0, str::len) + key.proto.len() + json.len())
            as u64
            + ENTRY_OVERHEAD
    }
}

/// The memo: `None` inside when disabled.
pub(crate) struct ResponseMemo {
    cache: Option<Cache<Key, Bytes, ByteWeighter, DefaultHashBuilder>>,
    hits: AtomicU64,
    misses: AtomicU64,
    too_large: AtomicU64,
}

impl ResponseMemo {
    /// A memo holding at most `max_bytes`; 0 disables it.
    pub(crate) fn new(max_bytes: usize) -> Self {
        let cache = (max_bytes > 0).then(|| {
            let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
            let shards = (max_bytes / MIN_SHARD_BYTES).clamp(1, parallelism * 4);
            let options = OptionsBuilder::new()
                .shards(shards)
                // A guess at a typical entry (a product-sized message and its
                // JSON); quick_cache only needs the order of magnitude.
                .estimated_items_capacity((max_bytes / 2048).max(32))
                .weight_capacity(max_bytes as u64)
                .build()
                .expect("weight and item capacities are set");
            Cache::with_options(
                options,
                ByteWeighter,
                DefaultHashBuilder::default(),
                Default::default(),
            )
        });
        ResponseMemo {
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
        }
    }

    /// The JSON body for `key`, from the memo or from `transcode` (whose
    /// answer is then memoized if the response is small enough). Errors of
    /// `transcode` are returned and nothing is stored.
    pub(crate) fn get_or_transcode<E>(
        &self,
        key: KeyRef<'_>,
        transcode: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Bytes, E> {
        let Some(cache) = &self.cache else {
            return transcode().map(Bytes::from);
        };
        if key.proto.len() > MAX_ENTRY_PROTO_BYTES {
            self.too_large.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("transcoder_response_memo_total", "result" => "too_large")
                .increment(1);
            return transcode().map(Bytes::from);
        }
        if let Some(json) = cache.get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("transcoder_response_memo_total", "result" => "hit").increment(1);
            return Ok(json);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("transcoder_response_memo_total", "result" => "miss").increment(1);
        let mut json = transcode()?;
        // Exact-sized, so that the weight counted is the memory held.
        json.shrink_to_fit();
        let json = Bytes::from(json);
        cache.insert(key.to_owned(), json.clone());
        Ok(json)
    }

    pub(crate) fn stats(&self) -> ResponseMemoStats {
        let (entries, bytes) = self
            .cache
            .as_ref()
            .map_or((0, 0), |c| (c.len() as u64, c.weight()));
        ResponseMemoStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            too_large: self.too_large.load(Ordering::Relaxed),
            entries,
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(proto: &'a [u8], select: Option<&'a str>) -> KeyRef<'a> {
        KeyRef {
            rpc: "pkg.Service/Method",
            response_body: None,
            select,
            proto,
        }
    }

    fn transcode_counting<'a>(
        calls: &'a mut u32,
        out: &'a str,
    ) -> impl FnOnce() -> Result<Vec<u8>, ()> + 'a {
        move || {
            *calls += 1;
            Ok(out.as_bytes().to_vec())
        }
    }

    #[test]
    fn the_memo_stays_under_its_byte_bound() {
        let max = 1 << 20;
        let memo = ResponseMemo::new(max);
        let json = "x".repeat(1000);
        for i in 0..5000u32 {
            let proto = i.to_le_bytes().repeat(250);
            let mut calls = 0;
            memo.get_or_transcode(key(&proto, None), transcode_counting(&mut calls, &json))
                .unwrap();
            assert_eq!(calls, 1, "every key is new");
        }
        let stats = memo.stats();
        assert!(stats.bytes <= max as u64, "{stats:?}");
        // ~2,128 bytes an entry: a full memo holds a few hundred, not 5,000.
        assert!(stats.entries > 100 && stats.entries < 500, "{stats:?}");
        assert_eq!(stats.misses, 5000);
    }

    #[test]
    fn keys_differing_in_any_part_are_different_entries() {
        let memo = ResponseMemo::new(1 << 20);
        let base = key(b"\x08\x01", None);
        let variants = [
            base,
            KeyRef {
                rpc: "pkg.Service/Other",
                ..base
            },
            KeyRef {
                response_body: Some(1),
                ..base
            },
            KeyRef {
                select: Some("id"),
                ..base
            },
            KeyRef {
                proto: b"\x08\x02",
                ..base
            },
        ];
        for (i, k) in variants.iter().enumerate() {
            let out = i.to_string();
            let json = memo.get_or_transcode(*k, || Ok::<_, ()>(out.clone().into_bytes()));
            assert_eq!(json.unwrap(), out.as_bytes());
        }
        assert_eq!(memo.stats().misses, 5);
        assert_eq!(memo.stats().hits, 0);
        // And each is found again with its own answer.
        for (i, k) in variants.iter().enumerate() {
            let json = memo.get_or_transcode(*k, || Err(()));
            assert_eq!(json.unwrap(), i.to_string().as_bytes());
        }
        assert_eq!(memo.stats().hits, 5);
    }

    #[test]
    fn an_error_is_not_memoized() {
        let memo = ResponseMemo::new(1 << 20);
        let k = key(b"\xff", None);
        assert!(memo.get_or_transcode(k, || Err::<Vec<u8>, _>(())).is_err());
        assert_eq!(memo.stats().entries, 0);
        let mut calls = 0;
        memo.get_or_transcode(k, transcode_counting(&mut calls, "{}"))
            .unwrap();
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_disabled_memo_always_transcodes() {
        let memo = ResponseMemo::new(0);
        for _ in 0..3 {
            let mut calls = 0;
            memo.get_or_transcode(key(b"\x08\x01", None), transcode_counting(&mut calls, "{}"))
                .unwrap();
            assert_eq!(calls, 1);
        }
        assert_eq!(memo.stats(), ResponseMemoStats::default());
    }
}
