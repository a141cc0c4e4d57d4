//! Demo data: a deterministic, generated catalog.
//!
//! Every run with the same `products` count writes the same catalog (a
//! fixed-seed ChaCha RNG drives every choice; the `fake` crate supplies
//! reviewer names). Titles are composed from per-category word lists written
//! for this project, with invented brands; nothing is copied from other
//! data sets. Seeding is idempotent: it does nothing when products exist.
//!
//! Large catalogs (benchmarks use up to 1,000,000 products) are written in
//! batches of [`BATCH`] rows with `UNNEST` arrays, all in one transaction.

use anyhow::Context as _;
use chrono::NaiveDate;
use fake::Fake as _;
use fake::faker::name::en::{FirstName, LastName};
use fake::rand::rngs::ChaCha8Rng;
use fake::rand::seq::IndexedRandom as _;
use fake::rand::{RngExt as _, SeedableRng as _};
use sqlx::{PgConnection, PgPool};

/// The seed of the demo catalog; change it and every product changes.
const SEED: u64 = 0x0ec0_ca7a_1095;
/// Rows per INSERT.
const BATCH: usize = 5_000;
/// Catalogs up to this size get a generated picture set per product (cheap one at a time,
/// but too slow and too large for a million products; the figures are in
/// docs/BENCHMARKS.md); the benchmarks' larger catalogs get none, so their picture URLs
/// answer 404.
pub const PICTURES_UP_TO: usize = 1_000;

/// One category of the demo catalog and the words its products are made of.
struct CategorySpec {
    slug: &'static str,
    name: &'static str,
    brands: &'static [&'static str],
    adjectives: &'static [&'static str],
    nouns: &'static [&'static str],
    variants: &'static [&'static str],
    /// Whole currency units, inclusive.
    price: (i64, i64),
    features: &'static [&'static str],
}

/// The demo categories: the ten a DummyJSON storefront expects at /products/categories
/// first, then more.
const CATEGORIES: &[CategorySpec] = &[
    CategorySpec {
        slug: "smartphones",
        name: "Smartphones",
        brands: &["Nimbus", "Vertex", "Orbita", "Kestrel"],
        adjectives: &["Pro", "Lite", "Max", "Mini", "Plus"],
        nouns: &[
            "Phone 12", "Phone 14", "Phone X", "Fold 3", "Flip 2", "Edge 5G",
        ],
        variants: &["128GB", "256GB", "512GB"],
        price: (149, 1499),
        features: &[
            "A bright OLED display that stays readable in sunlight",
            "All-day battery with fast wired and wireless charging",
            "Triple camera system with night mode",
            "Water and dust resistant to IP68",
        ],
    },
    CategorySpec {
        slug: "laptops",
        name: "Laptops",
        brands: &["Corvid", "Altair", "Northbook", "Quillon"],
        adjectives: &["Slim", "Ultra", "Creator", "Gaming", "Business"],
        nouns: &[
            "Laptop 14",
            "Laptop 16",
            "Notebook 13",
            "Ultrabook",
            "Workstation 17",
        ],
        variants: &["8GB RAM", "16GB RAM", "32GB RAM"],
        price: (399, 3299),
        features: &[
            "A backlit keyboard with a precise glass touchpad",
            "Up to 14 hours of battery life",
            "Thunderbolt ports and Wi-Fi 6E",
            "An aluminium chassis under 1.4 kg",
        ],
    },
    CategorySpec {
        slug: "fragrances",
        name: "Fragrances",
        brands: &["Maison Alba", "Verdier", "Solenne", "Ambrette & Co"],
        adjectives: &["Midnight", "Citrus", "Velvet", "Ocean", "Amber"],
        nouns: &["Eau de Parfum", "Eau de Toilette", "Cologne", "Perfume Oil"],
        variants: &["30ml", "50ml", "100ml"],
        price: (19, 249),
        features: &[
            "Top notes of bergamot and pink pepper",
            "A warm base of sandalwood and vanilla",
            "Long-lasting, with a soft trail",
            "Made in small batches",
        ],
    },
    CategorySpec {
        slug: "skincare",
        name: "Skincare",
        brands: &["Dermalune", "Purely", "Hydrea", "Botanika"],
        adjectives: &[
            "Hydrating",
            "Brightening",
            "Gentle",
            "Repairing",
            "Soothing",
        ],
        nouns: &[
            "Face Serum",
            "Night Cream",
            "Cleanser",
            "Sunscreen SPF 50",
            "Eye Cream",
        ],
        variants: &["30ml", "50ml", "150ml"],
        price: (8, 89),
        features: &[
            "Fragrance-free and suitable for sensitive skin",
            "With hyaluronic acid and niacinamide",
            "Dermatologically tested",
            "Absorbs quickly without a greasy finish",
        ],
    },
    CategorySpec {
        slug: "groceries",
        name: "Groceries",
        brands: &["Green Acre", "Millbrook", "Sunhill Farm", "Pantry & Co"],
        adjectives: &["Organic", "Fresh", "Wholegrain", "Free-Range", "Roasted"],
        nouns: &[
            "Honey",
            "Coffee Beans",
            "Olive Oil",
            "Pasta",
            "Eggs",
            "Almonds",
            "Rice",
        ],
        variants: &["250g", "500g", "1kg"],
        price: (2, 29),
        features: &[
            "Sourced from family farms",
            "No artificial additives",
            "Packed in recyclable packaging",
            "Best stored in a cool, dry place",
        ],
    },
    CategorySpec {
        slug: "home-decoration",
        name: "Home Decoration",
        brands: &["Hearth & Loom", "Casa Lume", "Nordvik", "Ivywood"],
        adjectives: &["Ceramic", "Woven", "Rustic", "Minimalist", "Handmade"],
        nouns: &[
            "Vase",
            "Wall Mirror",
            "Photo Frame",
            "Candle Holder",
            "Throw Pillow",
        ],
        variants: &["Small", "Medium", "Large"],
        price: (9, 149),
        features: &[
            "Adds warmth to any living room",
            "Each piece is finished by hand",
            "Easy to wipe clean",
            "Pairs well with natural materials",
        ],
    },
    CategorySpec {
        slug: "furniture",
        name: "Furniture",
        brands: &["Oakhaven", "Lindqvist", "Studio Forma", "Timberline"],
        adjectives: &[
            "Solid Oak",
            "Upholstered",
            "Folding",
            "Mid-Century",
            "Modular",
        ],
        nouns: &[
            "Dining Chair",
            "Coffee Table",
            "Bookshelf",
            "Sofa",
            "Bed Frame",
            "Desk",
        ],
        variants: &["Natural", "Walnut", "Black"],
        price: (59, 1899),
        features: &[
            "Built from responsibly sourced wood",
            "Assembles in under 30 minutes",
            "Tested for everyday family use",
            "Comes with a 5-year frame guarantee",
        ],
    },
    CategorySpec {
        slug: "tops",
        name: "Tops",
        brands: &["Threadline", "Marlowe", "Kinfolk Basics", "Azure Coast"],
        adjectives: &["Cotton", "Linen", "Cropped", "Oversized", "Striped"],
        nouns: &["T-Shirt", "Blouse", "Tank Top", "Sweater", "Hoodie"],
        variants: &["Size S", "Size M", "Size L"],
        price: (12, 89),
        features: &[
            "Soft, breathable fabric",
            "Relaxed fit that keeps its shape",
            "Machine washable at 30 degrees",
            "Made with organic cotton",
        ],
    },
    CategorySpec {
        slug: "womens-dresses",
        name: "Women's Dresses",
        brands: &["Rosalind", "Belle Rive", "Marlowe", "Seraphine"],
        adjectives: &["Floral", "Wrap", "Maxi", "Satin", "Pleated"],
        nouns: &[
            "Dress",
            "Midi Dress",
            "Evening Gown",
            "Shirt Dress",
            "Sundress",
        ],
        variants: &["Size 8", "Size 10", "Size 12"],
        price: (29, 299),
        features: &[
            "Flowing silhouette with a flattering waist",
            "Fully lined",
            "Hidden side zip",
            "Perfect for summer evenings",
        ],
    },
    CategorySpec {
        slug: "womens-shoes",
        name: "Women's Shoes",
        brands: &["Stellato", "Pace & Poise", "Corallo", "Wildrose"],
        adjectives: &["Leather", "Suede", "Block-Heel", "Platform", "Pointed"],
        nouns: &["Ankle Boots", "Pumps", "Sandals", "Loafers", "Sneakers"],
        variants: &["EU 37", "EU 38", "EU 39"],
        price: (35, 259),
        features: &[
            "Cushioned insole for all-day comfort",
            "Non-slip rubber sole",
            "Crafted from genuine leather",
            "True to size",
        ],
    },
    CategorySpec {
        slug: "mens-shirts",
        name: "Men's Shirts",
        brands: &["Harrow & Vane", "Thornbury", "Threadline", "Ridgeway"],
        adjectives: &["Oxford", "Flannel", "Slim-Fit", "Denim", "Checked"],
        nouns: &["Shirt", "Button-Down", "Polo Shirt", "Overshirt"],
        variants: &["Size M", "Size L", "Size XL"],
        price: (19, 129),
        features: &[
            "Crisp cotton that softens with every wash",
            "Reinforced buttons",
            "Tailored through the body",
            "Easy-iron finish",
        ],
    },
    CategorySpec {
        slug: "mens-shoes",
        name: "Men's Shoes",
        brands: &["Brogan", "Ridgeway", "Trailcraft", "Pace & Poise"],
        adjectives: &["Leather", "Canvas", "Waterproof", "Classic", "Running"],
        nouns: &[
            "Derby Shoes",
            "Chelsea Boots",
            "Sneakers",
            "Trainers",
            "Hiking Boots",
        ],
        variants: &["EU 42", "EU 43", "EU 44"],
        price: (39, 279),
        features: &[
            "Goodyear-welted sole that can be resoled",
            "Breathable lining",
            "Grippy outsole for wet streets",
            "Padded collar",
        ],
    },
    CategorySpec {
        slug: "mens-watches",
        name: "Men's Watches",
        brands: &["Tempora", "Halden", "Meridian", "Coastline"],
        adjectives: &["Automatic", "Chronograph", "Diver", "Field", "Dress"],
        nouns: &["Watch", "Wristwatch", "Pilot Watch", "GMT Watch"],
        variants: &["40mm", "42mm", "44mm"],
        price: (79, 1999),
        features: &[
            "Sapphire crystal and a screw-down crown",
            "Water resistant to 100 metres",
            "Luminous hands and markers",
            "Stainless steel bracelet",
        ],
    },
    CategorySpec {
        slug: "womens-watches",
        name: "Women's Watches",
        brands: &["Tempora", "Lunette", "Meridian", "Belle Rive"],
        adjectives: &["Rose Gold", "Minimalist", "Mesh", "Crystal", "Petite"],
        nouns: &["Watch", "Bracelet Watch", "Wristwatch"],
        variants: &["28mm", "32mm", "36mm"],
        price: (59, 1299),
        features: &[
            "Mother-of-pearl dial",
            "Quartz movement",
            "Adjustable mesh strap",
            "Splash resistant",
        ],
    },
    CategorySpec {
        slug: "womens-bags",
        name: "Women's Bags",
        brands: &["Corallo", "Amalfi Atelier", "Wildrose", "Nordvik"],
        adjectives: &["Leather", "Quilted", "Woven", "Mini", "Structured"],
        nouns: &[
            "Tote Bag",
            "Crossbody Bag",
            "Shoulder Bag",
            "Clutch",
            "Backpack",
        ],
        variants: &["Black", "Tan", "Cream"],
        price: (29, 599),
        features: &[
            "Inner zip pocket and card slots",
            "Adjustable strap",
            "Fits a 13-inch laptop",
            "Magnetic closure",
        ],
    },
    CategorySpec {
        slug: "jewellery",
        name: "Jewellery",
        brands: &["Aurelia", "Lunette", "Silverleaf", "Opaline"],
        adjectives: &[
            "Sterling Silver",
            "Gold-Plated",
            "Pearl",
            "Dainty",
            "Statement",
        ],
        nouns: &["Necklace", "Earrings", "Ring", "Bracelet", "Pendant"],
        variants: &["Silver", "Gold", "Rose Gold"],
        price: (15, 499),
        features: &[
            "Hypoallergenic and nickel-free",
            "Arrives in a gift box",
            "Hand-polished finish",
            "Tarnish resistant",
        ],
    },
    CategorySpec {
        slug: "sunglasses",
        name: "Sunglasses",
        brands: &["Solstice", "Coastline", "Horizon Optics", "Azure Coast"],
        adjectives: &["Polarized", "Aviator", "Round", "Cat-Eye", "Sport"],
        nouns: &["Sunglasses", "Shades", "Sun Frames"],
        variants: &["Black", "Tortoise", "Gold"],
        price: (15, 249),
        features: &[
            "UV400 protection",
            "Scratch-resistant lenses",
            "Lightweight acetate frame",
            "Includes a hard case",
        ],
    },
    CategorySpec {
        slug: "tablets",
        name: "Tablets",
        brands: &["Nimbus", "Vertex", "Orbita", "Slate Labs"],
        adjectives: &["Pro", "Air", "Mini", "Kids", "Plus"],
        nouns: &["Tablet 11", "Tablet 13", "Pad 10", "E-Reader"],
        variants: &["64GB", "128GB", "256GB"],
        price: (99, 1299),
        features: &[
            "Laminated display with stylus support",
            "Stereo speakers",
            "Up to 12 hours of video playback",
            "Works with a keyboard cover",
        ],
    },
    CategorySpec {
        slug: "mobile-accessories",
        name: "Mobile Accessories",
        brands: &["Voltix", "Kestrel", "Amplo", "Cordwise"],
        adjectives: &["Fast", "Wireless", "Rugged", "Magnetic", "Compact"],
        nouns: &[
            "Charger",
            "Power Bank",
            "Phone Case",
            "Earbuds",
            "USB-C Cable",
        ],
        variants: &["Black", "White", "Blue"],
        price: (5, 199),
        features: &[
            "Works with every USB-C phone",
            "Drop tested to 2 metres",
            "Pocket-sized",
            "Includes a braided cable",
        ],
    },
    CategorySpec {
        slug: "kitchen-accessories",
        name: "Kitchen Accessories",
        brands: &["Copperpot", "Millbrook", "Chef Atelier", "Ivywood"],
        adjectives: &[
            "Stainless Steel",
            "Non-Stick",
            "Cast Iron",
            "Bamboo",
            "Enamel",
        ],
        nouns: &[
            "Frying Pan",
            "Chef Knife",
            "Cutting Board",
            "Saucepan",
            "Kettle",
        ],
        variants: &["20cm", "24cm", "28cm"],
        price: (9, 249),
        features: &[
            "Dishwasher safe",
            "Works on induction hobs",
            "Ergonomic handle that stays cool",
            "Oven safe to 220 degrees",
        ],
    },
    CategorySpec {
        slug: "sports-accessories",
        name: "Sports Accessories",
        brands: &["Peakform", "Trailcraft", "Stride", "Velocity"],
        adjectives: &[
            "Pro",
            "Training",
            "Lightweight",
            "Adjustable",
            "Competition",
        ],
        nouns: &[
            "Yoga Mat",
            "Dumbbells",
            "Football",
            "Tennis Racket",
            "Water Bottle",
        ],
        variants: &["Blue", "Red", "Black"],
        price: (7, 299),
        features: &[
            "Built for daily training",
            "Non-slip grip",
            "Easy to carry and store",
            "Tested by club athletes",
        ],
    },
    CategorySpec {
        slug: "lighting",
        name: "Lighting",
        brands: &["Lumen & Ash", "Casa Lume", "Brightwell", "Nordvik"],
        adjectives: &["Dimmable", "Brass", "Arc", "Smart", "Industrial"],
        nouns: &[
            "Floor Lamp",
            "Table Lamp",
            "Pendant Light",
            "LED Strip",
            "Wall Sconce",
        ],
        variants: &["Warm White", "Cool White", "Colour"],
        price: (12, 399),
        features: &[
            "Energy-efficient LED",
            "Touch dimmer with three levels",
            "Fabric shade diffuses the light",
            "Works with voice assistants",
        ],
    },
    CategorySpec {
        slug: "automotive",
        name: "Automotive",
        brands: &["Roadwise", "Gearhead", "Autoline", "Voltix"],
        adjectives: &[
            "Heavy-Duty",
            "Portable",
            "Universal",
            "Digital",
            "All-Weather",
        ],
        nouns: &[
            "Car Vacuum",
            "Tyre Inflator",
            "Dash Cam",
            "Seat Covers",
            "Jump Starter",
        ],
        variants: &["Standard", "Deluxe", "Kit"],
        price: (14, 349),
        features: &[
            "Plugs into any 12V socket",
            "Fits most cars and SUVs",
            "Compact enough for the glovebox",
            "Clear digital readout",
        ],
    },
    CategorySpec {
        slug: "toys",
        name: "Toys",
        brands: &["Playmoor", "Tinker Tree", "Brightwell", "Little Comet"],
        adjectives: &[
            "Wooden",
            "Magnetic",
            "Plush",
            "Remote-Control",
            "Educational",
        ],
        nouns: &[
            "Building Blocks",
            "Puzzle",
            "Teddy Bear",
            "Race Car",
            "Train Set",
        ],
        variants: &["Ages 3+", "Ages 6+", "Ages 8+"],
        price: (6, 149),
        features: &[
            "Safety tested to EN 71",
            "Encourages creative play",
            "Non-toxic paints",
            "Batteries included",
        ],
    },
    CategorySpec {
        slug: "garden",
        name: "Garden",
        brands: &["Greenthumb", "Oakhaven", "Sunhill Farm", "Fernway"],
        adjectives: &[
            "Galvanised",
            "Solar",
            "Folding",
            "Self-Watering",
            "Terracotta",
        ],
        nouns: &[
            "Planter",
            "Garden Hose",
            "Pruning Shears",
            "Bird Feeder",
            "String Lights",
        ],
        variants: &["Small", "Medium", "Large"],
        price: (6, 299),
        features: &[
            "Weatherproof for year-round use",
            "Rust-resistant finish",
            "Easy to assemble",
            "Comfortable grip",
        ],
    },
    CategorySpec {
        slug: "books",
        name: "Books",
        brands: &["Pagecraft Press", "Inkwell", "Lanternfield", "Northbook"],
        adjectives: &[
            "Illustrated",
            "Hardcover",
            "Paperback",
            "Collector's",
            "Pocket",
        ],
        nouns: &["Cookbook", "Travel Guide", "Novel", "Field Guide", "Atlas"],
        variants: &["First Edition", "Second Edition", "Anniversary Edition"],
        price: (6, 79),
        features: &[
            "Printed on FSC-certified paper",
            "Full-colour photography throughout",
            "Includes an index and maps",
            "Sewn binding that lies flat",
        ],
    },
];

const WARRANTIES: &[&str] = &[
    "1 year warranty",
    "2 year warranty",
    "6 months warranty",
    "3 year warranty",
    "No warranty",
];
const SHIPPING: &[&str] = &[
    "Ships in 1-2 business days",
    "Ships in 3-5 business days",
    "Ships overnight",
    "Ships in 1 week",
];
const RETURN_POLICIES: &[&str] = &[
    "30 days return policy",
    "14 days return policy",
    "60 days return policy",
    "No return policy",
];
const REVIEW_COMMENTS: &[(i16, &str)] = &[
    (5, "Excellent quality, exactly as described."),
    (5, "Love it, would buy again!"),
    (4, "Very good, arrived quickly."),
    (4, "Good value for the price."),
    (3, "Does the job, nothing special."),
    (3, "Decent, but the packaging was damaged."),
    (2, "Smaller than I expected."),
    (2, "Stopped working after a few weeks."),
    (1, "Not as described, returned it."),
];

/// Writes the demo catalog when there are no products yet: all categories
/// (existing ones are kept) and `products` products spread over them.
#[tracing::instrument(skip(db))]
pub async fn seed_demo_catalog(db: &PgPool, products: usize) -> anyhow::Result<()> {
    let mut tx = db.begin().await.context("starting the seed transaction")?;
    // Two instances starting together must not both seed: the second waits
    // here, then sees the first one's products.
    sqlx::query!("LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .context("locking products")?;
    let seeded = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM products) AS "seeded!""#)
        .fetch_one(&mut *tx)
        .await
        .context("checking for products")?;
    if seeded {
        tracing::info!("catalog already has products; not seeding");
        return Ok(());
    }

    let category_ids = upsert_categories(&mut tx).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut written = 0;
    while written < products {
        let size = BATCH.min(products - written);
        let ids = reserve_product_ids(&mut tx, size).await?;
        let batch = Batch::generate(&mut rng, &ids, written, &category_ids);
        batch.insert(&mut tx).await?;
        if products <= PICTURES_UP_TO {
            batch.insert_pictures(&mut tx).await?;
        }
        written += size;
    }
    // Fresh statistics, so the very first queries on a large catalog use
    // its indexes.
    sqlx::query!("ANALYZE categories, products, product_images, reviews")
        .execute(&mut *tx)
        .await
        .context("analyzing the seeded tables")?;
    tx.commit().await.context("committing the seed")?;
    tracing::info!(
        products,
        categories = CATEGORIES.len(),
        "seeded the demo catalog"
    );
    Ok(())
}

/// Inserts the demo categories that are missing; returns the id of each
/// spec in [`CATEGORIES`] order.
async fn upsert_categories(db: &mut PgConnection) -> anyhow::Result<Vec<i64>> {
    let slugs: Vec<&str> = CATEGORIES.iter().map(|c| c.slug).collect();
    let names: Vec<&str> = CATEGORIES.iter().map(|c| c.name).collect();
    sqlx::query!(
        r#"
        INSERT INTO categories (slug, name)
        SELECT * FROM UNNEST($1::text[], $2::text[])
        ON CONFLICT ON CONSTRAINT categories_slug_key DO NOTHING
        "#,
        &slugs as &[&str],
        &names as &[&str],
    )
    .execute(&mut *db)
    .await
    .context("inserting demo categories")?;
    let rows = sqlx::query!(
        r#"SELECT id, slug FROM categories WHERE slug = ANY($1)"#,
        &slugs as &[&str]
    )
    .fetch_all(&mut *db)
    .await
    .context("loading demo category ids")?;
    slugs
        .iter()
        .map(|slug| {
            rows.iter()
                .find(|row| row.slug == *slug)
                .map(|row| row.id)
                .with_context(|| format!("category {slug} missing after insert"))
        })
        .collect()
}

/// Takes `n` ids from the products sequence, so that image URLs (which
/// embed the id) can be written in the same batch as their product.
async fn reserve_product_ids(db: &mut PgConnection, n: usize) -> anyhow::Result<Vec<i64>> {
    let n = i32::try_from(n).context("batch too large")?;
    sqlx::query_scalar!(
        r#"
        SELECT nextval(pg_get_serial_sequence('products', 'id')) AS "id!"
        FROM generate_series(1, $1::int)
        "#,
        n
    )
    .fetch_all(db)
    .await
    .context("reserving product ids")
}

/// One batch of generated rows, column by column (the shape `UNNEST` wants).
#[derive(Default)]
struct Batch {
    id: Vec<i64>,
    title: Vec<String>,
    description: Vec<String>,
    price_cents: Vec<i64>,
    discount: Vec<f64>,
    brand: Vec<String>,
    stock: Vec<i32>,
    rating: Vec<f64>,
    category_id: Vec<i64>,
    category_tag: Vec<String>,
    thumbnail: Vec<String>,
    sku: Vec<String>,
    weight: Vec<f64>,
    width: Vec<f64>,
    height: Vec<f64>,
    depth: Vec<f64>,
    warranty: Vec<String>,
    shipping: Vec<String>,
    return_policy: Vec<String>,
    minimum_order_quantity: Vec<i32>,
    barcode: Vec<String>,
    qr_code: Vec<String>,
    image_product_id: Vec<i64>,
    image_position: Vec<i16>,
    image_url: Vec<String>,
    review_product_id: Vec<i64>,
    review_rating: Vec<i16>,
    review_comment: Vec<String>,
    review_date: Vec<NaiveDate>,
    review_name: Vec<String>,
    review_email: Vec<String>,
}

impl Batch {
    /// Generates the products with the given ids; `offset` is how many were
    /// generated before (products go round the categories in turn).
    fn generate(rng: &mut ChaCha8Rng, ids: &[i64], offset: usize, category_ids: &[i64]) -> Batch {
        // Review dates count back from a fixed day, so the data does not
        // depend on when it was seeded.
        let epoch = NaiveDate::from_ymd_opt(2026, 11, 1).expect("a valid date");
        let mut b = Batch::default();
        for (n, &id) in ids.iter().enumerate() {
            let which = (offset + n) % CATEGORIES.len();
            let spec = &CATEGORIES[which];
            let brand = *spec.brands.choose(rng).expect("brands");
            let adjective = *spec.adjectives.choose(rng).expect("adjectives");
            let noun = *spec.nouns.choose(rng).expect("nouns");
            let variant = *spec.variants.choose(rng).expect("variants");
            let title = format!("{brand} {adjective} {noun} {variant}");
            let mut features: Vec<&str> = spec.features.sample(rng, 2).copied().collect();
            features.sort_unstable();
            let description = format!(
                "{adjective} {} by {brand}. {}. {}.",
                noun.to_lowercase(),
                features[0],
                features[1]
            );
            let dollars = rng.random_range(spec.price.0..=spec.price.1);
            let cents = if rng.random_bool(0.7) { 99 } else { 0 };
            let rating = f64::from(rng.random_range(250..=500_u16)) / 100.0;
            let stock = if rng.random_bool(0.1) {
                0
            } else {
                rng.random_range(1..=250)
            };

            b.id.push(id);
            b.title.push(title);
            b.description.push(description);
            b.price_cents.push(dollars * 100 + cents);
            b.discount
                .push(f64::from(rng.random_range(0..=2500_u16)) / 100.0);
            b.brand.push(brand.to_owned());
            b.stock.push(stock);
            b.rating.push(rating);
            b.category_id.push(category_ids[which]);
            b.category_tag.push(spec.slug.to_owned());
            // Paths under the media base (PUBLIC_URL's /media or CDN_URL), made absolute
            // when served, so the base can change without a reseed.
            b.thumbnail.push(format!("products/{id}/thumbnail.png"));
            b.sku.push(format!(
                "{}-{}-{id:08}",
                &spec.slug[..3].to_uppercase(),
                brand
                    .chars()
                    .filter(char::is_ascii_alphabetic)
                    .take(3)
                    .collect::<String>()
                    .to_uppercase()
            ));
            b.weight
                .push(f64::from(rng.random_range(1..=500_u16)) / 100.0);
            b.width
                .push(f64::from(rng.random_range(100..=6000_u16)) / 100.0);
            b.height
                .push(f64::from(rng.random_range(100..=6000_u16)) / 100.0);
            b.depth
                .push(f64::from(rng.random_range(100..=6000_u16)) / 100.0);
            b.warranty
                .push((*WARRANTIES.choose(rng).expect("warranties")).to_owned());
            b.shipping
                .push((*SHIPPING.choose(rng).expect("shipping")).to_owned());
            b.return_policy
                .push((*RETURN_POLICIES.choose(rng).expect("policies")).to_owned());
            b.minimum_order_quantity.push(if rng.random_bool(0.8) {
                1
            } else {
                rng.random_range(2..=10)
            });
            b.barcode.push(format!(
                "{:013}",
                rng.random_range(0..10_000_000_000_000_u64)
            ));
            b.qr_code
                .push(format!("https://cdn.ecom.local/qr/{id}.png"));

            for position in 0..3_i16 {
                b.image_product_id.push(id);
                b.image_position.push(position);
                b.image_url
                    .push(format!("products/{id}/{}.png", position + 1));
            }
            for _ in 0..rng.random_range(0..=3) {
                // Reviews lean towards the product's rating.
                let target = rating.round() as i16;
                let &&(stars, comment) = REVIEW_COMMENTS
                    .iter()
                    .filter(|(stars, _)| (stars - target).abs() <= 1)
                    .collect::<Vec<_>>()
                    .choose(rng)
                    .expect("a comment near every rating");
                let first: String = FirstName().fake_with_rng(rng);
                let last: String = LastName().fake_with_rng(rng);
                let email = format!(
                    "{}.{}@example.com",
                    first
                        .to_lowercase()
                        .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
                    last.to_lowercase()
                        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
                );
                b.review_product_id.push(id);
                b.review_rating.push(stars);
                b.review_comment.push(comment.to_owned());
                b.review_date
                    .push(epoch - chrono::Days::new(rng.random_range(0..730)));
                b.review_name.push(format!("{first} {last}"));
                b.review_email.push(email);
            }
        }
        b
    }

    /// Renders every product's thumbnail and gallery (on a blocking thread: it is CPU work)
    /// and stores them under the paths `generate` gave them.
    async fn insert_pictures(&self, db: &mut PgConnection) -> anyhow::Result<()> {
        let products: Vec<(i64, String, String)> = self
            .id
            .iter()
            .zip(&self.title)
            .zip(&self.category_tag)
            .map(|((id, title), tag)| (*id, title.clone(), tag.clone()))
            .collect();
        let (paths, bytes, etags) = tokio::task::spawn_blocking(move || {
            use sha2::Digest as _;
            let mut out = (Vec::new(), Vec::new(), Vec::new());
            for (id, title, category) in products {
                for variant in 0..=3_u8 {
                    let name = match variant {
                        0 => "thumbnail".to_owned(),
                        n => n.to_string(),
                    };
                    let png = super::pictures::render(&title, &category, variant);
                    out.2.push(hex::encode(&sha2::Sha256::digest(&png)[..16]));
                    out.0.push(format!("products/{id}/{name}.png"));
                    out.1.push(png);
                }
            }
            out
        })
        .await
        .context("rendering the demo pictures")?;
        sqlx::query!(
            r#"
            INSERT INTO media (path, content_type, etag, bytes)
            SELECT path, $4, etag, bytes FROM UNNEST($1::text[], $2::text[], $3::bytea[])
                AS t (path, etag, bytes)
            ON CONFLICT (path) DO NOTHING
            "#,
            &paths,
            &etags,
            &bytes,
            super::pictures::CONTENT_TYPE,
        )
        .execute(&mut *db)
        .await
        .context("inserting the demo pictures")?;
        Ok(())
    }

    async fn insert(&self, db: &mut PgConnection) -> anyhow::Result<()> {
        sqlx::query!(
            r#"
            INSERT INTO products
                (id, title, description, price_cents, discount_percentage, brand, stock,
                 rating, category_id, thumbnail, sku, tags, weight, width, height, depth,
                 warranty_information, shipping_information, return_policy,
                 minimum_order_quantity, barcode, qr_code)
            SELECT id, title, description, price_cents, discount, brand, stock,
                   rating, category_id, thumbnail, sku, ARRAY[category_tag, lower(brand)],
                   weight, width, height, depth, warranty, shipping, return_policy,
                   minimum_order_quantity, barcode, qr_code
            FROM UNNEST(
                $1::int8[], $2::text[], $3::text[], $4::int8[], $5::float8[], $6::text[],
                $7::int4[], $8::float8[], $9::int8[], $10::text[], $11::text[], $12::text[],
                $13::float8[], $14::float8[], $15::float8[], $16::float8[], $17::text[],
                $18::text[], $19::text[], $20::int4[], $21::text[], $22::text[]
            ) AS t (id, title, description, price_cents, discount, brand, stock,
                    rating, category_id, category_tag, thumbnail, sku, weight, width,
                    height, depth, warranty, shipping, return_policy,
                    minimum_order_quantity, barcode, qr_code)
            "#,
            &self.id,
            &self.title,
            &self.description,
            &self.price_cents,
            &self.discount,
            &self.brand,
            &self.stock,
            &self.rating,
            &self.category_id,
            &self.category_tag,
            &self.thumbnail,
            &self.sku,
            &self.weight,
            &self.width,
            &self.height,
            &self.depth,
            &self.warranty,
            &self.shipping,
            &self.return_policy,
            &self.minimum_order_quantity,
            &self.barcode,
            &self.qr_code,
        )
        .execute(&mut *db)
        .await
        .context("inserting demo products")?;
        sqlx::query!(
            r#"
            INSERT INTO product_images (product_id, position, url)
            SELECT * FROM UNNEST($1::int8[], $2::int2[], $3::text[])
            "#,
            &self.image_product_id,
            &self.image_position,
            &self.image_url,
        )
        .execute(&mut *db)
        .await
        .context("inserting demo images")?;
        sqlx::query!(
            r#"
            INSERT INTO reviews (product_id, rating, comment, date, reviewer_name, reviewer_email)
            SELECT * FROM UNNEST($1::int8[], $2::int2[], $3::text[], $4::date[], $5::text[], $6::text[])
            "#,
            &self.review_product_id,
            &self.review_rating,
            &self.review_comment,
            &self.review_date,
            &self.review_name,
            &self.review_email,
        )
        .execute(&mut *db)
        .await
        .context("inserting demo reviews")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_categories_are_all_there() {
        let slugs: Vec<&str> = CATEGORIES.iter().map(|c| c.slug).collect();
        for slug in [
            "smartphones",
            "laptops",
            "fragrances",
            "skincare",
            "groceries",
            "home-decoration",
            "furniture",
            "tops",
            "womens-dresses",
            "womens-shoes",
        ] {
            assert!(slugs.contains(&slug), "{slug}");
        }
        assert!(CATEGORIES.len() >= 24);
        let mut unique = slugs.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), slugs.len());
    }

    #[test]
    fn every_category_can_make_a_product() {
        for spec in CATEGORIES {
            assert!(
                super::super::domain::CategorySlug::parse(spec.slug).is_ok(),
                "{}",
                spec.slug
            );
            assert!(!spec.brands.is_empty() && !spec.adjectives.is_empty());
            assert!(!spec.nouns.is_empty() && !spec.variants.is_empty());
            assert!(spec.features.len() >= 2);
            assert!(spec.price.0 > 0 && spec.price.0 <= spec.price.1);
            for brand in spec.brands {
                assert!(
                    brand.chars().filter(char::is_ascii_alphabetic).count() >= 3,
                    "{brand}"
                );
            }
        }
        for (stars, _) in REVIEW_COMMENTS {
            assert!((1..=5).contains(stars));
        }
    }

    #[test]
    fn generation_is_deterministic_and_valid() {
        let ids: Vec<i64> = (1..=60).collect();
        let categories: Vec<i64> = (1..=CATEGORIES.len() as i64).collect();
        let a = Batch::generate(&mut ChaCha8Rng::seed_from_u64(SEED), &ids, 0, &categories);
        let b = Batch::generate(&mut ChaCha8Rng::seed_from_u64(SEED), &ids, 0, &categories);
        assert_eq!(a.title, b.title);
        assert_eq!(a.review_name, b.review_name);
        assert_eq!(a.image_url.len(), 180);
        assert!(a.stock.contains(&0), "some products are out of stock");
        assert!(a.review_rating.iter().all(|r| (1..=5).contains(r)));
        for (title, description) in a.title.iter().zip(&a.description) {
            assert!(super::super::domain::Title::parse(title).is_ok(), "{title}");
            assert!(super::super::domain::Description::parse(description).is_ok());
        }
        let mut skus = a.sku.clone();
        skus.sort_unstable();
        skus.dedup();
        assert_eq!(skus.len(), ids.len());
    }
}
