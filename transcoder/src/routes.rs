//! TEMPORARY STUB of the t-routes branch's API; replaced by the real module at merge.
#![allow(missing_docs, dead_code, unused_variables)]

use http::{HeaderName, Method, StatusCode};
use prost_reflect::{DescriptorPool, FieldDescriptor, MethodDescriptor};

#[derive(Debug, Clone)]
pub enum BodyRule {
    None,
    Whole,
    Field(FieldDescriptor),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub template: crate::template::Template,
    pub pattern: String,
    pub rpc: MethodDescriptor,
    pub body: BodyRule,
    pub response_body: Option<FieldDescriptor>,
    pub success_status: StatusCode,
    pub response_headers: Vec<HeaderName>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RouteError(pub String);

#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

pub enum RouteMatch<'a> {
    Found { route: &'a Route, vars: Vec<(String, String)> },
    MethodNotAllowed { allow: Vec<Method> },
    NotFound,
    BadPath { message: String },
}

impl RouteTable {
    pub fn from_pool(pool: &DescriptorPool) -> Result<RouteTable, RouteError> {
        unimplemented!()
    }
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
    pub fn match_request(&self, method: &Method, raw_path: &str) -> RouteMatch<'_> {
        unimplemented!()
    }
}
