//! The codec's test proto, compiled with protox at test time.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

/// The pool holding `codec.v1` (tests/proto/codec/v1/codec_test.proto) and its imports.
pub fn pool() -> DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proto");
        protox::Compiler::new([root])
            .expect("protox compiler")
            .include_imports(true)
            .open_file("codec/v1/codec_test.proto")
            .expect("codec_test.proto compiles")
            .descriptor_pool()
    })
    .clone()
}

/// The descriptor of `codec.v1.<name>`.
#[allow(dead_code)]
pub fn desc(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(&format!("codec.v1.{name}"))
        .unwrap_or_else(|| panic!("codec.v1.{name} not in the pool"))
}

/// A new, empty `codec.v1.<name>`.
#[allow(dead_code)]
pub fn new(name: &str) -> DynamicMessage {
    DynamicMessage::new(desc(name))
}
