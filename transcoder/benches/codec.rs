//! JSON <-> protobuf for a product-sized message (24 fields, 5 image URLs, 3 nested reviews):
//! `cargo bench -p transcoder --bench codec`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use prost_reflect::{DescriptorPool, DynamicMessage};
use transcoder::codec::{JsonMarshaler, Marshaler, Selector, bind_value};

fn pool() -> DescriptorPool {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proto");
    protox::Compiler::new([root])
        .expect("protox compiler")
        .include_imports(true)
        .open_file("codec/v1/codec_test.proto")
        .expect("codec_test.proto compiles")
        .descriptor_pool()
}

const PRODUCT: &str = r#"{
  "id": 1,
  "title": "Essence Mascara Lash Princess",
  "description": "The Essence Mascara Lash Princess is a popular mascara known for its volumizing and lengthening effects. Achieve dramatic lashes with this long-lasting and cruelty-free formula.",
  "category": "beauty",
  "price": 9.99,
  "discountPercentage": 7.17,
  "rating": 4.94,
  "stock": 5,
  "tags": ["beauty", "mascara"],
  "brand": "Essence",
  "sku": "RCH45Q1A",
  "weight": 2,
  "dimensions": {"width": 23.17, "height": 14.43, "depth": 28.01},
  "warrantyInformation": "1 month warranty",
  "shippingInformation": "Ships in 1 month",
  "availabilityStatus": "Low Stock",
  "reviews": [
    {"rating": 2, "comment": "Very unhappy with my purchase!", "date": "2024-05-23", "reviewerName": "John Doe", "reviewerEmail": "john.doe@x.dummyjson.com"},
    {"rating": 2, "comment": "Not as described!", "date": "2024-05-23", "reviewerName": "Nolan Gonzalez", "reviewerEmail": "nolan.gonzalez@x.dummyjson.com"},
    {"rating": 5, "comment": "Very satisfied!", "date": "2024-05-23", "reviewerName": "Scarlett Wright", "reviewerEmail": "scarlett.wright@x.dummyjson.com"}
  ],
  "returnPolicy": "30 days return policy",
  "minimumOrderQuantity": 24,
  "createdAt": "2024-05-23T08:56:21.618Z",
  "updatedAt": "2024-05-23T08:56:21.618Z",
  "images": [
    "https://cdn.dummyjson.com/products/images/beauty/Essence%20Mascara%20Lash%20Princess/1.png",
    "https://cdn.dummyjson.com/products/images/beauty/Essence%20Mascara%20Lash%20Princess/2.png",
    "https://cdn.dummyjson.com/products/images/beauty/Essence%20Mascara%20Lash%20Princess/3.png",
    "https://cdn.dummyjson.com/products/images/beauty/Essence%20Mascara%20Lash%20Princess/4.png",
    "https://cdn.dummyjson.com/products/images/beauty/Essence%20Mascara%20Lash%20Princess/5.png"
  ],
  "thumbnail": "https://cdn.dummyjson.com/products/images/beauty/Essence%20Mascara%20Lash%20Princess/thumbnail.png",
  "color": "dark_red"
}"#;

fn bench_codec(c: &mut Criterion) {
    let pool = pool();
    let desc = pool
        .get_message_by_name("codec.v1.Product")
        .expect("Product");
    let codec = JsonMarshaler;
    let mut product = DynamicMessage::new(desc.clone());
    codec
        .decode(PRODUCT.as_bytes(), &mut product, None)
        .expect("the bench product decodes");
    let mut encoded = Vec::new();
    codec.encode_message(&product, None, &mut encoded);
    let wire = prost::Message::encode_to_vec(&product);

    c.bench_function("decode product JSON -> DynamicMessage", |b| {
        b.iter(|| {
            let mut msg = DynamicMessage::new(desc.clone());
            codec
                .decode(black_box(encoded.as_slice()), &mut msg, None)
                .expect("decodes");
            msg
        })
    });
    c.bench_function("encode product DynamicMessage -> JSON", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            codec.encode_message(black_box(&product), None, &mut out);
            out.len()
        })
    });
    let select = Selector::parse("title,price");
    c.bench_function("encode product with ?select=title,price", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            codec.encode_message(black_box(&product), Some(&select), &mut out);
            out.len()
        })
    });
    c.bench_function("JSON -> protobuf wire (decode + encode_to_vec)", |b| {
        b.iter(|| {
            let mut msg = DynamicMessage::new(desc.clone());
            codec
                .decode(black_box(encoded.as_slice()), &mut msg, None)
                .expect("decodes");
            prost::Message::encode_to_vec(&msg)
        })
    });
    c.bench_function("protobuf wire -> JSON (decode + encode_message)", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            let msg =
                DynamicMessage::decode(desc.clone(), black_box(wire.as_slice())).expect("decodes");
            out.clear();
            codec.encode_message(&msg, None, &mut out);
            out.len()
        })
    });
    // Baselines, for scale: parsing alone, and prost-reflect's own (streaming, serde) JSON.
    c.bench_function("baseline: serde_json::Value parse only", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(encoded.as_slice())))
    });
    c.bench_function("baseline: prost-reflect serde decode", |b| {
        let options = prost_reflect::DeserializeOptions::new().deny_unknown_fields(true);
        let mut reference = encoded.clone();
        // prost-reflect's enum names are the full value names.
        let needle = br#""color":"dark_red""#;
        if let Some(at) = reference.windows(needle.len()).position(|w| w == needle) {
            reference.splice(
                at..at + needle.len(),
                br#""color":"COLOR_DARK_RED""#.iter().copied(),
            );
        }
        b.iter(|| {
            let mut de = serde_json::Deserializer::from_slice(black_box(reference.as_slice()));
            DynamicMessage::deserialize_with_options(desc.clone(), &mut de, &options)
                .expect("decodes")
        })
    });
    c.bench_function("baseline: prost-reflect serde encode", |b| {
        let options = prost_reflect::SerializeOptions::new()
            .stringify_64_bit_integers(false)
            .skip_default_fields(false);
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            let mut ser = serde_json::Serializer::new(&mut out);
            black_box(&product)
                .serialize_with_options(&mut ser, &options)
                .expect("encodes");
            out.len()
        })
    });
    c.bench_function("bind_value id + nested", |b| {
        b.iter(|| {
            let mut msg = DynamicMessage::new(desc.clone());
            bind_value(&mut msg, black_box("id"), black_box("42")).expect("binds");
            bind_value(&mut msg, black_box("dimensions.width"), black_box("1.5")).expect("binds");
            msg
        })
    });
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
