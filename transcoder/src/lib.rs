#![forbid(unsafe_code)]

pub mod codec;
