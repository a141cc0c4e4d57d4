//! Descriptor pools for the routing and OpenAPI tests, compiled with protox at test time.
//!
//! The pools are decoded from the encoded descriptor set, as the real edge does, so
//! the `google.api.http` and `(transcoder.v1.rest)` option values survive.

#![allow(dead_code)] // each test crate uses a part

use std::path::PathBuf;

use prost_reflect::DescriptorPool;
use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pool of `tests/proto/routing/v1/routing_test.proto`.
pub fn routing_pool() -> DescriptorPool {
    let mut compiler =
        protox::Compiler::new([crate_dir().join("proto"), crate_dir().join("tests/proto")])
            .expect("include paths exist");
    compiler.include_imports(true);
    compiler
        .open_file("routing/v1/routing_test.proto")
        .expect("routing_test.proto compiles");
    DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice())
        .expect("descriptor set decodes")
}

/// Compiles one in-memory proto file in package `inline.v1` whose body is `body`; it may use
/// `google.api.http`, `(transcoder.v1.rest)` and the well-known types.
pub fn inline_pool(body: &str) -> DescriptorPool {
    struct Inline(String);
    impl FileResolver for Inline {
        fn open_file(&self, name: &str) -> Result<File, protox::Error> {
            if name == "inline/v1/inline.proto" {
                File::from_source(name, &self.0)
            } else {
                Err(protox::Error::file_not_found(name))
            }
        }
    }
    let source = format!(
        "syntax = \"proto3\";\npackage inline.v1;\nimport \"google/api/annotations.proto\";\n\
         import \"transcoder/v1/options.proto\";\n{body}"
    );
    let mut resolver = ChainFileResolver::new();
    resolver.add(Inline(source));
    resolver.add(IncludeFileResolver::new(crate_dir().join("proto")));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler
        .open_file("inline/v1/inline.proto")
        .expect("inline proto compiles");
    DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice())
        .expect("descriptor set decodes")
}
