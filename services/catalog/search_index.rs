//! The catalog's full-text search index (GET /products/search; issue #16, target 3): an
//! in-memory tantivy index of the live products, one per catalog process, that answers which
//! products match a search, in which order, and how many; the rows themselves are then read
//! from PostgreSQL by id.
//!
//! Why an index next to PostgreSQL: an exact total and an exact ranking of a search in SQL visit
//! every hit in the heap (the GIN index gives row addresses, not counts or ranks), about 4 µs a
//! hit when the catalog does not fit in shared buffers, so a common word's 42,000 hits took
//! 160-350 ms. Here a count is a walk of a posting list and a page a top-k over fast fields:
//! figures in docs/BENCHMARKS.md (2026-12-07, issue #16 target 3).
//!
//! What it holds never outlives PostgreSQL's truth:
//!
//! - **Built from PostgreSQL** at start-up (the first catch-up reads every live product in one
//!   REPEATABLE READ snapshot), so a restart is a rebuild and nothing is kept on disk to go
//!   stale or corrupt.
//! - **Caught up before every search** that reaches the store, and every second in the
//!   background: it reads the products whose `search_xid` the snapshot of its previous read did
//!   not see (migrations/20261207000600_catalog_search_index.sql says why that misses no
//!   commit), so a search sees every change committed before it was asked, whichever instance
//!   made it, as the SQL search did. Concurrent searches share one catch-up.
//! - **Scores that depend on the product and the query only.** BM25 normally weighs terms by
//!   corpus statistics (how many products hold a word), which change with every insert and
//!   differ between instances; a relevance cursor (score, id) minted on one instance would then
//!   skip or repeat products on another. The statistics are fixed constants instead
//!   ([`FixedStatistics`]): the score keeps BM25's term frequency and length normalisation with
//!   the title weighing most (title 1, brand 0.4, description 0.2, PostgreSQL's `ts_rank`
//!   weights), and is bit for bit the same on every instance and after any change to other
//!   products, so the keyset `score < s OR (score = s AND id > i)` holds across pages.
//!
//! The query language follows `websearch_to_tsquery('english', ..)`, which the SQL search
//! used: words are ANDed, `or` separates alternatives, `-word` excludes, English stemming and
//! stop words. A quoted phrase matches its words anywhere (the index keeps no positions).
//! Typo tolerance: when the full text finds fewer than [`TYPO_FALLBACK_BELOW`] products, every
//! word of four letters or more also matches a title word within one edit (a transposition
//! counts one: "iphnoe" finds "iPhone"), two from eight letters; full-text hits come first.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::PgPool;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn, TermOrdHit};
use tantivy::query::{
    Bm25StatisticsProvider, BooleanQuery, BoostQuery, ConstScoreQuery, EmptyQuery, FuzzyTermQuery,
    Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{
    DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentOrdinal, SegmentReader,
    TantivyDocument, Term,
};

use super::domain::{After, ProductQuery, SortKey, SortOrder, SortValue};
use super::store::{self, SearchableProduct};

/// A search adds typo matches only when the full text finds fewer products than this: a whole
/// default page (as the SQL search did).
pub const TYPO_FALLBACK_BELOW: u64 = 10;

/// How often the background follower catches up (searches catch up themselves as well; this
/// keeps the work each search finds small).
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// How long a search waits for the index to be built before PostgreSQL answers it instead
/// (a large catalog takes longer to index than a client waits).
const BUILD_WAIT: Duration = Duration::from_secs(2);

/// Products read per statement when the index is built.
const BUILD_BATCH: i64 = 10_000;

/// The writer's memory budget: fewer, larger segments when a large catalog is built.
const WRITER_MEMORY: usize = 96 << 20;

/// The score of a title word within a typo of a query word (a constant: the automaton does
/// not say how far the word was), below any full-text hit's group by construction.
const TYPO_WEIGHT: Score = 0.5;

/// The weights of the fields, PostgreSQL's `ts_rank` defaults for A, B and C.
const TITLE_WEIGHT: Score = 1.0;
const BRAND_WEIGHT: Score = 0.4;
const DESCRIPTION_WEIGHT: Score = 0.2;

/// The tokenizer of the searched fields and of the query: English, stemmed, stop words out.
const ENGLISH: &str = "ecom_english";
/// The tokenizer of the title's words as written (lower-cased), for typo matching.
const WORDS: &str = "ecom_words";

/// The fields of one indexed product.
#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    title_words: Field,
    brand: Field,
    description: Field,
    /// The brand lower-cased, whole: the `brand` filter.
    brand_key: Field,
    /// The category slug, whole: the `category` filter.
    category: Field,
    price: Field,
    /// The rating in hundredths (exact, as the cursor carries it).
    rating: Field,
    in_stock: Field,
    /// The title as a sortable fast field (`sortBy=title`): bytes order, which is the
    /// database's under its C.UTF-8 collation.
    title_sort: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let text = |tokenizer: &str, record: IndexRecordOption| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(tokenizer)
                    .set_index_option(record),
            )
        };
        let number = NumericOptions::default().set_indexed().set_fast();
        let fields = Fields {
            id: b.add_i64_field("id", number.clone()),
            title: b.add_text_field("title", text(ENGLISH, IndexRecordOption::WithFreqs)),
            title_words: b.add_text_field("title_words", text(WORDS, IndexRecordOption::Basic)),
            brand: b.add_text_field("brand", text(ENGLISH, IndexRecordOption::WithFreqs)),
            description: b
                .add_text_field("description", text(ENGLISH, IndexRecordOption::WithFreqs)),
            brand_key: b.add_text_field("brand_key", STRING),
            category: b.add_text_field("category", STRING),
            price: b.add_i64_field("price", number.clone()),
            rating: b.add_i64_field("rating", NumericOptions::default().set_fast()),
            in_stock: b.add_bool_field("in_stock", NumericOptions::default().set_indexed()),
            title_sort: b.add_text_field("title_sort", TextOptions::default().set_fast("raw")),
        };
        (b.build(), fields)
    }

    fn document(&self, p: &SearchableProduct) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_i64(self.id, p.id);
        doc.add_text(self.title, &p.title);
        doc.add_text(self.title_words, &p.title);
        if let Some(brand) = &p.brand {
            doc.add_text(self.brand, brand);
            doc.add_text(self.brand_key, brand.to_lowercase());
        }
        doc.add_text(self.description, &p.description);
        doc.add_text(self.category, &p.category);
        doc.add_i64(self.price, p.price_cents);
        doc.add_i64(self.rating, p.rating_hundredths);
        doc.add_bool(self.in_stock, p.in_stock);
        doc.add_text(self.title_sort, &p.title);
        doc
    }

    /// The nominal average length (tokens) of a field, for [`FixedStatistics`].
    fn nominal_length(&self, field: Field) -> u64 {
        if field == self.description {
            40
        } else if field == self.brand {
            1
        } else {
            6
        }
    }
}

/// BM25 statistics that do not depend on the index (see the module doc): every term is as
/// rare as every other, every field of its nominal length on average.
struct FixedStatistics(Fields);

/// The nominal catalog size of [`FixedStatistics`].
const NOMINAL_DOCS: u64 = 1_000_000;
/// The nominal number of products holding any one term.
const NOMINAL_DOC_FREQ: u64 = 1_000;

impl Bm25StatisticsProvider for FixedStatistics {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        Ok(NOMINAL_DOCS * self.0.nominal_length(field))
    }
    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(NOMINAL_DOCS)
    }
    fn doc_freq(&self, _term: &Term) -> tantivy::Result<u64> {
        Ok(NOMINAL_DOC_FREQ)
    }
}

/// What a search found: the ids of the page in order, every match, and where the next page
/// starts.
#[derive(Debug)]
pub struct Hits {
    pub ids: Vec<i64>,
    pub total: i64,
    pub next: Option<After>,
}

/// Where the follower stands.
struct Followed {
    /// `pg_current_snapshot()` of the last read; `None` before the index is built.
    snapshot: Option<String>,
    /// When the last completed catch-up started (before it took its snapshot).
    started: Option<Instant>,
}

struct Inner {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    followed: tokio::sync::Mutex<Followed>,
    /// Whether the first build has completed.
    built: AtomicBool,
}

/// The catalog's search index; cheap to clone (one index per process, shared).
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

impl SearchIndex {
    /// An empty index; the first [`SearchIndex::catch_up`] builds it from PostgreSQL.
    pub fn new() -> anyhow::Result<SearchIndex> {
        let (schema, fields) = Fields::schema();
        let index = Index::create_in_ram(schema);
        let english = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(StopWordFilter::new(Language::English).context("English stop words")?)
            .filter(Stemmer::new(Language::English))
            .build();
        let words = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .build();
        index.tokenizers().register(ENGLISH, english);
        index.tokenizers().register(WORDS, words);
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .context("creating the search index writer")?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .context("creating the search index reader")?;
        Ok(SearchIndex {
            inner: Arc::new(Inner {
                index,
                reader,
                writer: Mutex::new(writer),
                fields,
                followed: tokio::sync::Mutex::new(Followed {
                    snapshot: None,
                    started: None,
                }),
                built: AtomicBool::new(false),
            }),
        })
    }

    /// Starts the background follower on `db` (the primary): it builds the index now rather
    /// than on the first search, then catches up every [`FOLLOW_EVERY`]. It stops when the last
    /// clone of the index is dropped.
    pub fn follow(&self, db: PgPool) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { break };
                let index = SearchIndex { inner };
                if let Err(err) = index.catch_up(&db).await {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "search index: catching up failed"
                    );
                }
                drop(index);
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
        });
    }

    /// Brings the index up to every change committed before this call: builds it if it is
    /// not built yet, else applies the products changed since the previous read. A call that
    /// finds a catch-up in progress waits for it, then returns at once if one that started
    /// after it was asked has completed meanwhile. False when the index is still being built
    /// after [`BUILD_WAIT`]: the caller searches without it.
    pub async fn catch_up(&self, db: &PgPool) -> anyhow::Result<bool> {
        let asked = Instant::now();
        let mut followed = if self.inner.built.load(AtomicOrdering::Acquire) {
            self.inner.followed.lock().await
        } else {
            match tokio::time::timeout(BUILD_WAIT, self.inner.followed.lock()).await {
                Ok(followed) => followed,
                Err(_) => return Ok(false),
            }
        };
        if followed.started.is_some_and(|started| started >= asked) {
            return Ok(true);
        }
        let started = Instant::now();
        let snapshot = match followed.snapshot.clone() {
            None => match self.build(db).await {
                Ok(snapshot) => snapshot,
                Err(err) => {
                    // The next catch-up builds again from an empty writer.
                    self.rollback().await;
                    return Err(err);
                }
            },
            Some(previous) => {
                let (snapshot, changed) = store::searchable_changes(db, &previous).await?;
                if !changed.is_empty() {
                    let count = changed.len();
                    self.apply(changed).await?;
                    tracing::debug!(count, "search index: products re-read");
                }
                snapshot
            }
        };
        followed.snapshot = Some(snapshot);
        followed.started = Some(started);
        self.inner.built.store(true, AtomicOrdering::Release);
        Ok(true)
    }

    /// Reads every live product into an empty index; the snapshot it read them in.
    async fn build(&self, db: &PgPool) -> anyhow::Result<String> {
        let began = Instant::now();
        let mut tx = store::begin_snapshot(db).await?;
        let snapshot = store::current_snapshot(&mut tx).await?;
        let mut after = 0;
        let mut count = 0;
        let mut first = true;
        loop {
            let batch = store::searchable_products(&mut tx, after, BUILD_BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            count += batch.len();
            let full = batch.len() as i64 == BUILD_BATCH;
            self.add(batch, first).await?;
            first = false;
            if !full {
                break;
            }
        }
        tx.commit().await.context("ending the search index build")?;
        self.commit().await?;
        tracing::info!(
            products = count,
            elapsed_ms = began.elapsed().as_millis() as u64,
            "search index built"
        );
        Ok(snapshot)
    }

    /// Adds `products` (all live) to the index, first emptying it when `reset`.
    async fn add(&self, products: Vec<SearchableProduct>, reset: bool) -> anyhow::Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let writer = inner.writer.lock().expect("search index writer poisoned");
            if reset {
                writer.delete_all_documents()?;
            }
            for product in &products {
                writer.add_document(inner.fields.document(product))?;
            }
            Ok(())
        })
        .await
        .context("the search index writer panicked")?
    }

    /// Replaces the documents of `products` (deleted ones are only removed) and commits.
    async fn apply(&self, products: Vec<SearchableProduct>) -> anyhow::Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut writer = inner.writer.lock().expect("search index writer poisoned");
            for product in &products {
                writer.delete_term(Term::from_field_i64(inner.fields.id, product.id));
                if product.live {
                    writer.add_document(inner.fields.document(product))?;
                }
            }
            writer.commit()?;
            inner.reader.reload()?;
            Ok(())
        })
        .await
        .context("the search index writer panicked")?
    }

    /// Drops what was added since the last commit (a build that failed halfway).
    async fn rollback(&self) {
        let inner = self.inner.clone();
        let rolled_back = tokio::task::spawn_blocking(move || {
            inner
                .writer
                .lock()
                .expect("search index writer poisoned")
                .rollback()
        })
        .await;
        if !matches!(rolled_back, Ok(Ok(_))) {
            tracing::error!("search index: rolling back a failed build failed");
        }
    }

    async fn commit(&self) -> anyhow::Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            inner
                .writer
                .lock()
                .expect("search index writer poisoned")
                .commit()?;
            inner.reader.reload()?;
            Ok(())
        })
        .await
        .context("the search index writer panicked")?
    }

    /// The page of `query` (whose text is not blank) as the index has it now.
    pub async fn search(&self, query: &ProductQuery) -> anyhow::Result<Hits> {
        let inner = self.inner.clone();
        let query = query.clone();
        tokio::task::spawn_blocking(move || search(&inner, &query))
            .await
            .context("a search panicked")?
    }
}

// ------------------------------------------------------------------ queries

/// One word of a search: its stems (English) and its forms as written (lower-cased).
struct Word {
    stems: Vec<String>,
    written: Vec<String>,
}

/// Words ANDed, some excluded: one alternative of a search (`or` separates them).
#[derive(Default)]
struct Alternative {
    words: Vec<Word>,
    excluded: Vec<Word>,
}

/// Splits `text` as `websearch_to_tsquery` does: alternatives separated by `or`, words
/// ANDed, `-` excluding, quotes grouping (whose words are then ANDed too).
fn parse(index: &Index, text: &str) -> Vec<Alternative> {
    let mut english = index.tokenizers().get(ENGLISH).expect("registered");
    let mut words = index.tokenizers().get(WORDS).expect("registered");
    let mut analyze = |raw: &str| Word {
        stems: tokens(&mut english, raw),
        written: tokens(&mut words, raw),
    };
    let mut alternatives = vec![Alternative::default()];
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let negated = c == '-';
        if negated {
            chars.next();
        }
        let mut raw = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                raw.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                raw.push(c);
                chars.next();
            }
        }
        if !quoted && !negated && raw.eq_ignore_ascii_case("or") {
            if alternatives.last().is_some_and(|a| !a.words.is_empty()) {
                alternatives.push(Alternative::default());
            }
            continue;
        }
        let current = alternatives.last_mut().expect("at least one");
        // A quoted phrase: each of its words is a word of the alternative.
        for piece in raw.split_whitespace() {
            let word = analyze(piece);
            if negated {
                current.excluded.push(word);
            } else {
                current.words.push(word);
            }
        }
    }
    alternatives
}

fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while let Some(token) = stream.next() {
        out.push(token.text.clone());
    }
    out
}

/// The query of one stem in any searched field, each field with its weight.
fn stem_query(f: &Fields, stem: &str) -> Box<dyn Query> {
    let clauses: Vec<(Occur, Box<dyn Query>)> = [
        (f.title, TITLE_WEIGHT),
        (f.brand, BRAND_WEIGHT),
        (f.description, DESCRIPTION_WEIGHT),
    ]
    .into_iter()
    .map(|(field, weight)| {
        let term = TermQuery::new(
            Term::from_field_text(field, stem),
            IndexRecordOption::WithFreqs,
        );
        (
            Occur::Should,
            Box::new(BoostQuery::new(Box::new(term), weight)) as Box<dyn Query>,
        )
    })
    .collect();
    Box::new(BooleanQuery::new(clauses))
}

/// A word's full-text query: every stem of it (none for a stop word).
fn word_query(f: &Fields, word: &Word) -> Option<Box<dyn Query>> {
    match word.stems.as_slice() {
        [] => None,
        [stem] => Some(stem_query(f, stem)),
        stems => Some(Box::new(BooleanQuery::new(
            stems
                .iter()
                .map(|s| (Occur::Must, stem_query(f, s)))
                .collect(),
        ))),
    }
}

/// A title word within a typo of `written`, if it is long enough to be forgiven one.
fn typo_query(f: &Fields, written: &str) -> Option<Box<dyn Query>> {
    let letters = written.chars().count();
    let distance = match letters {
        0..=3 => return None,
        4..=7 => 1,
        _ => 2,
    };
    let fuzzy = FuzzyTermQuery::new(
        Term::from_field_text(f.title_words, written),
        distance,
        true,
    );
    Some(Box::new(BoostQuery::new(Box::new(fuzzy), TYPO_WEIGHT)))
}

/// The text part of a search; with `typos`, each word also matches a title word within a typo.
fn text_query(f: &Fields, alternatives: &[Alternative], typos: bool) -> Box<dyn Query> {
    let mut groups: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for alternative in alternatives {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for word in &alternative.words {
            let mut either: Vec<Box<dyn Query>> = word_query(f, word).into_iter().collect();
            if typos && word.written.len() == 1 {
                either.extend(typo_query(f, &word.written[0]));
            }
            match either.len() {
                0 => {}
                1 => clauses.push((Occur::Must, either.pop().expect("one"))),
                _ => clauses.push((
                    Occur::Must,
                    Box::new(BooleanQuery::new(
                        either.into_iter().map(|q| (Occur::Should, q)).collect(),
                    )),
                )),
            }
        }
        if clauses.is_empty() {
            // Only stop words (or only exclusions): matches nothing, as an empty tsquery.
            continue;
        }
        for word in &alternative.excluded {
            clauses.extend(word_query(f, word).map(|q| (Occur::MustNot, q)));
        }
        groups.push((Occur::Should, Box::new(BooleanQuery::new(clauses))));
    }
    match groups.len() {
        0 => Box::new(EmptyQuery),
        1 => groups.pop().expect("one").1,
        _ => Box::new(BooleanQuery::new(groups)),
    }
}

/// The text query with the listing's filters, which do not score.
fn filtered(f: &Fields, text: Box<dyn Query>, query: &ProductQuery) -> Box<dyn Query> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text)];
    let mut filter = |q: Box<dyn Query>| {
        clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))));
    };
    let filters = &query.filter;
    if let Some(category) = &filters.category {
        filter(Box::new(TermQuery::new(
            Term::from_field_text(f.category, category),
            IndexRecordOption::Basic,
        )));
    }
    if let Some(brand) = &filters.brand {
        filter(Box::new(TermQuery::new(
            Term::from_field_text(f.brand_key, &brand.to_lowercase()),
            IndexRecordOption::Basic,
        )));
    }
    if filters.price.min_cents.is_some() || filters.price.max_cents.is_some() {
        let bound = |cents: Option<i64>| match cents {
            Some(c) => Bound::Included(Term::from_field_i64(f.price, c)),
            None => Bound::Unbounded,
        };
        filter(Box::new(RangeQuery::new(
            bound(filters.price.min_cents),
            bound(filters.price.max_cents),
        )));
    }
    if filters.in_stock {
        filter(Box::new(TermQuery::new(
            Term::from_field_bool(f.in_stock, true),
            IndexRecordOption::Basic,
        )));
    }
    Box::new(BooleanQuery::new(clauses))
}

fn search(inner: &Inner, query: &ProductQuery) -> anyhow::Result<Hits> {
    let f = &inner.fields;
    let text = query.text.as_deref().unwrap_or_default();
    let alternatives = parse(&inner.index, text);
    let searcher = inner.reader.searcher();
    let statistics = FixedStatistics(*f);
    let order = match query.sort {
        None => Sorting::Relevance,
        Some(key) => Sorting::Key(key, query.order),
    };
    let keep = usize::try_from(query.page.skip() + query.page.limit() + 1).unwrap_or(usize::MAX);
    let after = query.after.as_ref();
    let typos_asked = after.is_some_and(|a| a.typos);

    let strict = filtered(f, text_query(f, &alternatives, false), query);
    if !typos_asked {
        let page = PageCollector {
            order,
            after,
            keep,
            full_text: None,
        };
        let (total, hits) = searcher
            .search_with_statistics_provider(&*strict, &page, &statistics)
            .context("searching the index")?;
        // A later page keeps the choice of its first page, whatever the count is now.
        if after.is_some() || total >= TYPO_FALLBACK_BELOW {
            return Ok(page_of(hits, total, query, false));
        }
    }
    // Typo matches join: the full-text hits are few (or were, on the first page).
    let full_text: Arc<HashSet<i64>> = searcher
        .search(&*strict, &Ids)
        .context("searching the index")?
        .into_iter()
        .collect::<HashSet<i64>>()
        .into();
    let tolerant = filtered(f, text_query(f, &alternatives, true), query);
    let page = PageCollector {
        order,
        after,
        keep,
        full_text: Some(full_text),
    };
    let (total, hits) = searcher
        .search_with_statistics_provider(&*tolerant, &page, &statistics)
        .context("searching the index")?;
    Ok(page_of(hits, total, query, true))
}

/// The page of `hits` (sorted, at most skip + limit + 1 of them).
fn page_of(hits: Vec<Hit>, total: u64, query: &ProductQuery, typos: bool) -> Hits {
    let page_size = usize::try_from(query.page.limit()).unwrap_or(usize::MAX);
    let mut hits: Vec<Hit> = hits
        .into_iter()
        .skip(usize::try_from(query.page.skip()).unwrap_or(0))
        .collect();
    let next = (hits.len() > page_size).then(|| {
        hits.truncate(page_size);
        hits.last().map(|hit| After {
            value: hit.value.clone(),
            id: hit.id,
            typos,
        })
    });
    Hits {
        ids: hits.iter().map(|h| h.id).collect(),
        total: i64::try_from(total).unwrap_or(i64::MAX),
        next: next.flatten(),
    }
}

// --------------------------------------------------------------- collectors

/// The ids of every match.
struct Ids;

impl Collector for Ids {
    type Fruit = Vec<i64>;
    type Child = IdsOfSegment;
    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(IdsOfSegment {
            id: segment.fast_fields().i64("id")?,
            ids: Vec::new(),
        })
    }
    fn requires_scoring(&self) -> bool {
        false
    }
    fn merge_fruits(&self, fruits: Vec<Vec<i64>>) -> tantivy::Result<Vec<i64>> {
        Ok(fruits.concat())
    }
}

struct IdsOfSegment {
    id: Column<i64>,
    ids: Vec<i64>,
}

impl SegmentCollector for IdsOfSegment {
    type Fruit = Vec<i64>;
    fn collect(&mut self, doc: DocId, _: Score) {
        self.ids.extend(self.id.first(doc));
    }
    fn harvest(self) -> Vec<i64> {
        self.ids
    }
}

#[derive(Clone, Copy)]
enum Sorting {
    /// Best first (score descending, id ascending), full-text hits before typo-only ones.
    Relevance,
    Key(SortKey, SortOrder),
}

/// One match on a page: its id and its sort value (the next page's keyset).
#[derive(Debug, Clone)]
struct Hit {
    id: i64,
    value: SortValue,
}

/// Counts every match and keeps the first `keep` of them in the page's order after `after`:
/// the exact total and the page in one pass over the matches.
struct PageCollector<'a> {
    order: Sorting,
    after: Option<&'a After>,
    keep: usize,
    /// In a typo search, the full-text hits (which rank before the others).
    full_text: Option<Arc<HashSet<i64>>>,
}

/// How a segment reads the sort key of a document.
enum KeyColumn {
    Score,
    Price(Column<i64>),
    Rating(Column<i64>),
    Title(StrColumn),
}

/// A document's place in the page's order within its segment: smaller comes first. The key
/// is the sort value turned so that ascending order is the page's (negated when descending;
/// a title's term ordinal, which orders like the title within one segment), then the id
/// likewise.
type Place = (i64, i64);

struct PageOfSegment {
    id: Column<i64>,
    key: KeyColumn,
    descending: bool,
    /// Documents at or before this place are before the cursor.
    bound: Option<Place>,
    keep: usize,
    full_text: Option<Arc<HashSet<i64>>>,
    count: u64,
    /// The best `keep` so far, the worst on top; with whether each matched the full text.
    best: BinaryHeap<(Place, bool)>,
}

/// A relevance key: full-text hits first, then the score (non-negative, so its bits order
/// like it), both descending.
fn relevance_key(full_text: bool, score: Score) -> i64 {
    -((i64::from(full_text) << 32) | i64::from(score.to_bits()))
}

impl<'a> Collector for PageCollector<'a> {
    type Fruit = (u64, Vec<Hit>);
    type Child = PageOfSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let fast = segment.fast_fields();
        let (key, descending) = match self.order {
            Sorting::Relevance => (KeyColumn::Score, false),
            Sorting::Key(SortKey::Price, order) => (
                KeyColumn::Price(fast.i64("price")?),
                order == SortOrder::Desc,
            ),
            Sorting::Key(SortKey::Rating, order) => (
                KeyColumn::Rating(fast.i64("rating")?),
                order == SortOrder::Desc,
            ),
            Sorting::Key(SortKey::Title, order) => {
                let column = fast.str("title_sort")?.ok_or_else(|| {
                    tantivy::TantivyError::SchemaError("title_sort is not a fast field".into())
                })?;
                (KeyColumn::Title(column), order == SortOrder::Desc)
            }
        };
        let turn = |v: i64| if descending { -v } else { v };
        let bound = match self.after {
            None => None,
            Some(after) => Some(match (&key, &after.value) {
                (KeyColumn::Score, SortValue::Rank(score)) => {
                    (relevance_key(false, *score), after.id)
                }
                (KeyColumn::Score, SortValue::TypoRank { full_text, score }) => {
                    (relevance_key(*full_text, *score), after.id)
                }
                (KeyColumn::Price(_), SortValue::Price(v))
                | (KeyColumn::Rating(_), SortValue::Rating(v)) => (turn(*v), turn(after.id)),
                (KeyColumn::Title(column), SortValue::Title(title)) => {
                    let dictionary = column.dictionary();
                    match dictionary.term_ord_or_next(title.as_bytes())? {
                        TermOrdHit::Exact(ord) => (turn(ord as i64), turn(after.id)),
                        // No title equal to the cursor's in this segment: those from `next`
                        // on come after it ascending, those before it descending.
                        TermOrdHit::Next(next) => {
                            let next = next.min(dictionary.num_terms() as u64) as i64;
                            if descending {
                                (-next, i64::MAX)
                            } else {
                                (next - 1, i64::MAX)
                            }
                        }
                    }
                }
                _ => {
                    return Err(tantivy::TantivyError::InvalidArgument(
                        "a cursor of another order".into(),
                    ));
                }
            }),
        };
        Ok(PageOfSegment {
            id: fast.i64("id")?,
            key,
            descending,
            bound,
            keep: self.keep,
            full_text: self.full_text.clone(),
            count: 0,
            best: BinaryHeap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        matches!(self.order, Sorting::Relevance)
    }

    fn merge_fruits(&self, fruits: Vec<(u64, Vec<Hit>)>) -> tantivy::Result<(u64, Vec<Hit>)> {
        let total = fruits.iter().map(|(count, _)| count).sum();
        let mut hits: Vec<Hit> = fruits.into_iter().flat_map(|(_, hits)| hits).collect();
        let descending = matches!(self.order, Sorting::Key(_, SortOrder::Desc));
        hits.sort_by(|a, b| compare(a, b, descending));
        hits.truncate(self.keep);
        Ok((total, hits))
    }
}

/// The page's order across segments: by sort value, then id (in the same direction; by
/// relevance, best first and ids ascending).
fn compare(a: &Hit, b: &Hit, descending: bool) -> Ordering {
    let by_value = match (&a.value, &b.value) {
        (SortValue::Rank(x), SortValue::Rank(y)) => return y.total_cmp(x).then(a.id.cmp(&b.id)),
        (
            SortValue::TypoRank {
                full_text: fx,
                score: x,
            },
            SortValue::TypoRank {
                full_text: fy,
                score: y,
            },
        ) => {
            return fy.cmp(fx).then(y.total_cmp(x)).then(a.id.cmp(&b.id));
        }
        (SortValue::Price(x), SortValue::Price(y))
        | (SortValue::Rating(x), SortValue::Rating(y)) => x.cmp(y),
        (SortValue::Title(x), SortValue::Title(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => Ordering::Equal,
    };
    let ordering = by_value.then(a.id.cmp(&b.id));
    if descending {
        ordering.reverse()
    } else {
        ordering
    }
}

impl SegmentCollector for PageOfSegment {
    type Fruit = (u64, Vec<Hit>);

    fn collect(&mut self, doc: DocId, score: Score) {
        self.count += 1;
        let Some(id) = self.id.first(doc) else { return };
        let turn = |v: i64| if self.descending { -v } else { v };
        let (key, flag) = match &self.key {
            KeyColumn::Score => {
                let full_text = self.full_text.as_ref().is_some_and(|ids| ids.contains(&id));
                (relevance_key(full_text, score), full_text)
            }
            KeyColumn::Price(column) | KeyColumn::Rating(column) => {
                (turn(column.first(doc).unwrap_or(0)), false)
            }
            KeyColumn::Title(column) => (turn(column.ords().first(doc).unwrap_or(0) as i64), false),
        };
        let place = (key, turn(id));
        if self.bound.is_some_and(|bound| place <= bound) {
            return;
        }
        if self.best.len() < self.keep {
            self.best.push((place, flag));
        } else if self.best.peek().is_some_and(|(worst, _)| place < *worst) {
            self.best.pop();
            self.best.push((place, flag));
        }
    }

    fn harvest(self) -> (u64, Vec<Hit>) {
        let turn = |v: i64| if self.descending { -v } else { v };
        let mut title = String::new();
        let hits = self
            .best
            .into_iter()
            .map(|((key, id), full_text)| {
                let id = turn(id);
                let value = match &self.key {
                    KeyColumn::Score => {
                        let score = f32::from_bits((-key & 0xffff_ffff) as u32);
                        if self.full_text.is_some() {
                            SortValue::TypoRank { full_text, score }
                        } else {
                            SortValue::Rank(score)
                        }
                    }
                    KeyColumn::Price(_) => SortValue::Price(turn(key)),
                    KeyColumn::Rating(_) => SortValue::Rating(turn(key)),
                    KeyColumn::Title(column) => {
                        title.clear();
                        let _ = column.ord_to_str(turn(key) as u64, &mut title);
                        SortValue::Title(title.clone())
                    }
                };
                Hit { id, value }
            })
            .collect();
        (self.count, hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::domain::{Page, ProductFilter};
    use crate::validation::Violations;

    fn product(id: i64, title: &str, price_cents: i64) -> SearchableProduct {
        SearchableProduct {
            id,
            title: title.to_owned(),
            description: "A product made by a test.".to_owned(),
            brand: None,
            category: "smartphones".to_owned(),
            price_cents,
            rating_hundredths: (id % 5) * 100,
            in_stock: true,
            live: true,
        }
    }

    fn query(
        text: &str,
        sort: Option<SortKey>,
        order: SortOrder,
        limit: i64,
        after: Option<After>,
    ) -> ProductQuery {
        ProductQuery {
            text: Some(text.to_owned()),
            filter: ProductFilter::default(),
            sort,
            order,
            page: Page::parse(Some(0), Some(limit), 1000, &mut Violations::default()).unwrap(),
            after,
        }
    }

    /// Each `put` commits: several segments, as a running index has.
    async fn index_of(products: Vec<SearchableProduct>) -> SearchIndex {
        let index = SearchIndex::new().unwrap();
        for chunk in products.chunks(7) {
            index.apply(chunk.to_vec()).await.unwrap();
        }
        index
    }

    impl Clone for SearchableProduct {
        fn clone(&self) -> Self {
            SearchableProduct {
                title: self.title.clone(),
                description: self.description.clone(),
                brand: self.brand.clone(),
                category: self.category.clone(),
                ..*self
            }
        }
    }

    /// 40 products: "Zephyr" once or twice in the title, prices and ratings that repeat.
    fn catalog() -> Vec<SearchableProduct> {
        (1..=40)
            .map(|id| {
                let title = if id % 2 == 0 {
                    format!("Zephyr lamp {id:02}")
                } else {
                    format!("Zephyr zephyr speaker {id:02}")
                };
                product(id, &title, 1000 + (id % 7) * 100)
            })
            .collect()
    }

    /// Walks `text` in the order asked, 4 a page by cursor, adding `inserts[n]` after page n:
    /// no product twice, every product that was there before in its order, the total of the
    /// moment on every page.
    async fn assert_walk(sort: Option<SortKey>, order: SortOrder, inserts: Vec<SearchableProduct>) {
        let index = index_of(catalog()).await;
        let before = index
            .search(&query("zephyr", sort, order, 0, None))
            .await
            .unwrap();
        assert_eq!(before.total, 40);
        let mut seen = Vec::new();
        let mut after = None;
        let mut added = 0;
        for page in 0.. {
            assert!(page < 50, "no last page");
            let hits = index
                .search(&query("zephyr", sort, order, 4, after.clone()))
                .await
                .unwrap();
            assert_eq!(hits.total, 40 + added, "exact total on page {page}");
            seen.extend(&hits.ids);
            after = hits.next;
            if after.is_none() {
                break;
            }
            if let Some(insert) = inserts.get(page) {
                index.apply(vec![insert.clone()]).await.unwrap();
                added += 1;
            }
        }
        assert!(added >= 3, "the walk outlasts the inserts");
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "a product twice: {seen:?}");
        let originals: Vec<i64> = seen
            .into_iter()
            .filter(|id| before.ids.contains(id))
            .collect();
        assert_eq!(originals, before.ids, "skipped or reordered");
    }

    fn inserts(title: &str, price: i64) -> Vec<SearchableProduct> {
        (0..4)
            .map(|n| product(100 + n, &format!("{title} {n}"), price))
            .collect()
    }

    #[tokio::test]
    async fn a_relevance_cursor_neither_skips_nor_repeats_with_better_hits_added_between_pages() {
        assert_walk(None, SortOrder::Asc, inserts("Zephyr zephyr zephyr", 500)).await;
    }

    #[tokio::test]
    async fn sorted_cursors_neither_skip_nor_repeat_with_earlier_products_added_between_pages() {
        assert_walk(
            Some(SortKey::Price),
            SortOrder::Asc,
            inserts("Zephyr cheap", 1),
        )
        .await;
        assert_walk(
            Some(SortKey::Price),
            SortOrder::Desc,
            inserts("Zephyr dear", 9_999),
        )
        .await;
        assert_walk(Some(SortKey::Rating), SortOrder::Desc, {
            let mut rated = inserts("Zephyr rated", 5);
            rated.iter_mut().for_each(|p| p.rating_hundredths = 500);
            rated
        })
        .await;
        // Titles compare across segments by their bytes, a cursor's title between two others.
        assert_walk(
            Some(SortKey::Title),
            SortOrder::Asc,
            inserts("Aaa zephyr", 5),
        )
        .await;
        assert_walk(
            Some(SortKey::Title),
            SortOrder::Desc,
            inserts("Zzz zephyr", 5),
        )
        .await;
    }

    #[tokio::test]
    async fn sorted_pages_follow_the_sort_key_then_the_id() {
        let index = index_of(catalog()).await;
        let all = catalog();
        for (sort, order) in [
            (SortKey::Price, SortOrder::Asc),
            (SortKey::Price, SortOrder::Desc),
            (SortKey::Rating, SortOrder::Asc),
            (SortKey::Title, SortOrder::Desc),
        ] {
            let hits = index
                .search(&query("zephyr", Some(sort), order, 0, None))
                .await
                .unwrap();
            let mut expected: Vec<&SearchableProduct> = all.iter().collect();
            expected.sort_by(|a, b| {
                let by = match sort {
                    SortKey::Price => a.price_cents.cmp(&b.price_cents),
                    SortKey::Rating => a.rating_hundredths.cmp(&b.rating_hundredths),
                    SortKey::Title => a.title.as_bytes().cmp(b.title.as_bytes()),
                }
                .then(a.id.cmp(&b.id));
                if order == SortOrder::Desc {
                    by.reverse()
                } else {
                    by
                }
            });
            let expected: Vec<i64> = expected.iter().map(|p| p.id).collect();
            assert_eq!(hits.ids, expected, "{sort:?} {order:?}");
        }
    }

    /// The relevance of a product does not depend on the others (corpus statistics are fixed):
    /// what makes a relevance cursor valid on every instance and after any write.
    #[tokio::test]
    async fn a_relevance_cursor_stays_valid_when_other_products_are_added() {
        // Eleven equal hits: more than the typo fallback's ten, so the full text alone ranks.
        let index = index_of((1..=11).map(|id| product(id, "Walnut desk", 100)).collect()).await;
        let first = index
            .search(&query("walnut", None, SortOrder::Asc, 1, None))
            .await
            .unwrap();
        assert_eq!(first.ids, [1]);
        let cursor = first.next.expect("a second page");
        // Many better hits (the word twice in a title as short) and many others: with corpus
        // statistics, every score would move, and the cursor's with them.
        index
            .apply(
                (100..400)
                    .map(|id| product(id, "Walnut walnut", 100))
                    .collect(),
            )
            .await
            .unwrap();
        index
            .apply((400..700).map(|id| product(id, "Oak shelf", 100)).collect())
            .await
            .unwrap();
        let second = index
            .search(&query("walnut", None, SortOrder::Asc, 20, Some(cursor)))
            .await
            .unwrap();
        assert_eq!(second.total, 311);
        assert_eq!(
            second.ids,
            (2..=11).collect::<Vec<i64>>(),
            "the same score, the next ids; no better hit after the cursor"
        );
    }

    #[tokio::test]
    async fn the_query_language_follows_websearch_to_tsquery() {
        let index = index_of(vec![
            product(1, "Walnut desk lamp", 100),
            product(2, "Brass wall clock", 100),
            product(3, "Walnut wall shelf", 100),
        ])
        .await;
        let ids = |text: &'static str| {
            let index = index.clone();
            async move {
                let mut ids = index
                    .search(&query(text, None, SortOrder::Asc, 0, None))
                    .await
                    .unwrap()
                    .ids;
                ids.sort();
                ids
            }
        };
        assert_eq!(ids("walnut wall").await, [3], "words are ANDed");
        assert_eq!(ids("lamp or clock").await, [1, 2], "or: alternatives");
        assert_eq!(ids("walnut -desk").await, [3], "-: excluded");
        assert_eq!(ids("\"wall clock\"").await, [2], "quotes group words");
        assert_eq!(ids("Lamps").await, [1], "stemmed, any case");
    }

    #[tokio::test]
    async fn typo_matches_join_only_below_ten_full_text_hits_and_come_last() {
        let mut products: Vec<SearchableProduct> = (1..=10)
            .map(|id| product(id, &format!("Walnut desk {id}"), 100))
            .collect();
        products.push(product(11, "Walnutt shelf", 100));
        products.extend((12..=14).map(|id| product(id, &format!("Cedar chest {id}"), 100)));
        products.push(product(15, "Cedarr bench", 100));
        products.push(product(16, "iPhone 15 Pro", 100));
        let index = index_of(products).await;
        let search = |text: &'static str| {
            let index = index.clone();
            async move {
                index
                    .search(&query(text, None, SortOrder::Asc, 0, None))
                    .await
                    .unwrap()
            }
        };
        let walnut = search("walnut").await;
        assert_eq!(walnut.total, 10, "ten full-text hits: no typo matches");
        assert!(!walnut.ids.contains(&11));
        let cedar = search("cedar").await;
        assert_eq!(cedar.total, 4);
        assert_eq!(cedar.ids.last(), Some(&15), "typo matches come last");
        assert_eq!(
            search("iphnoe").await.ids,
            [16],
            "a transposition is one typo"
        );
    }
}
