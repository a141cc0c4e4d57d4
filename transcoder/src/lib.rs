#![forbid(unsafe_code)]

pub mod openapi;
pub mod routes;
pub mod template;

pub fn placeholder() {}
