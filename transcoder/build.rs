//! Compiles the crate's test proto (`tests/proto/library/v1/library.proto`)
//! for the integration tests and the bench: generated tonic code and the
//! encoded descriptor set (with the `google.api.http` and
//! `transcoder.v1.rest` extensions kept) go to OUT_DIR. The library itself
//! uses neither.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=tests/proto");
    let mut compiler = protox::Compiler::new(["proto", "tests/proto"]).expect("protox compiler");
    compiler
        .include_imports(true)
        .open_file("library/v1/library.proto")
        .expect("library.proto compiles");
    std::fs::write(
        out.join("library_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )
    .expect("writing the descriptor set");
    let fds = compiler.file_descriptor_set();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(&out)
        .compile_fds(fds)
        .expect("generating the test code");
}
