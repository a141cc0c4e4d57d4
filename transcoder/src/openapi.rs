//! TEMPORARY STUB of the t-routes branch's API; replaced by the real module at merge.
#![allow(missing_docs, unused_variables)]

use crate::routes::RouteTable;

#[derive(Debug, Clone)]
pub struct OpenApiInfo {
    pub title: String,
    pub version: String,
}

pub fn document(table: &RouteTable, base_path: &str, info: &OpenApiInfo) -> serde_json::Value {
    unimplemented!()
}
