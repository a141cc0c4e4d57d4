//! Compiles the contract in `proto/` with protox (pure Rust, no `protoc`).
//!
//! Two outputs in `OUT_DIR`:
//! * `ecom_descriptor.bin`: the encoded `FileDescriptorSet` of every `proto/ecom/**/*.proto`
//!   and its imports, with source info and with extension options (`google.api.http`,
//!   `transcoder.v1.rest`) kept, for the REST edge, reflection and OpenAPI;
//! * the tonic/prost code of every package, included by `services/proto.rs`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use prost_reflect::prost::Message;

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=transcoder/proto");

    let mut files = Vec::new();
    collect_protos(Path::new("proto/ecom"), &mut files)?;
    files.sort();

    let mut compiler = protox::Compiler::new(["proto", "transcoder/proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    // Encoded by protox itself: `file_descriptor_set()` would drop the extension values.
    let bytes = compiler.encode_file_descriptor_set();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR is not set")?);
    std::fs::write(out_dir.join("ecom_descriptor.bin"), &bytes)
        .context("writing ecom_descriptor.bin")?;

    let fds = tonic_prost_build::FileDescriptorSet::decode(bytes.as_slice())
        .context("decoding the descriptor set protox encoded")?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Unimplemented RPCs answer UNIMPLEMENTED instead of failing to compile.
        .generate_default_stubs(true)
        .compile_fds(fds)
        .context("generating Rust code from the descriptor set")?;
    Ok(())
}

/// Appends every `.proto` file under `dir` (recursively) to `out`.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
