//! The generated API: messages, tonic clients and servers of every package in `proto/`,
//! and the descriptor set they were generated from.
//!
//! This module owns nothing but generated code and the descriptor pool; it must never
//! hold hand-written conversions (those live in each service's `grpc.rs`).

use std::sync::OnceLock;

/// The shop's own packages.
pub mod ecom {
    /// Messages and enums shared by the services (`ecom.common.v1`).
    pub mod common {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("ecom.common.v1");
        }
    }
    /// Logins, tokens and passwords (`ecom.auth.v1`).
    pub mod auth {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("ecom.auth.v1");
        }
    }
    /// The product catalog (`ecom.catalog.v1`).
    pub mod catalog {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("ecom.catalog.v1");
        }
    }
    /// Orders and carts (`ecom.orders.v1`).
    pub mod orders {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("ecom.orders.v1");
        }
    }
    /// Profiles, preferences and addresses (`ecom.users.v1`).
    pub mod users {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("ecom.users.v1");
        }
    }
    /// Payment intents and the provider's webhook (`ecom.payments.v1`).
    pub mod payments {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("ecom.payments.v1");
        }
    }
}

/// The vendored googleapis packages the shop's protos import.
pub mod google {
    /// `google.api`: HTTP rules and `HttpBody` (used by the invoice and the webhook).
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// The REST edge's own options (`transcoder.v1.RestOptions`).
pub mod transcoder {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("transcoder.v1");
    }
}

/// The encoded `FileDescriptorSet` of every package above and its imports, with
/// source info and extension options (`google.api.http`, `transcoder.v1.rest`).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ecom_descriptor.bin"));

/// The descriptor pool of [`FILE_DESCRIPTOR_SET`], decoded once.
pub fn descriptor_pool() -> prost_reflect::DescriptorPool {
    static POOL: OnceLock<prost_reflect::DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("the descriptor set built by build.rs decodes")
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::{DynamicMessage, Value};

    /// Every service with its expected number of RPCs.
    const SERVICES: &[(&str, usize)] = &[
        // login, register, validate, logout, refresh, the three password RPCs + GET /auth/me.
        ("ecom.auth.v1.AuthService", 9),
        // 8 product RPCs (ListCategories and UpdateProduct carry one extra binding each)
        // + GET /media/{path} + 4 internal RPCs without a rule (INTERNAL_RPCS) + 3 wishlist
        // and 3 review RPCs.
        ("ecom.catalog.v1.CatalogService", 19),
        // 10 order RPCs (/orders...) + 7 cart RPCs + 2 internal RPCs (payments' view)
        // + 5 coupon, 2 checkout, 2 shipping and 2 tax-rate RPCs.
        ("ecom.orders.v1.OrdersService", 30),
        // 11 RPCs of /users/me and GET /users/{id} + PUT /users/{id} + 2 notification and
        // 6 webhook RPCs.
        ("ecom.users.v1.UsersService", 20),
        // 3 intent RPCs (create, confirm, status) + the webhook + 2 internal RPCs (orders' view).
        ("ecom.payments.v1.PaymentsService", 6),
    ];

    /// Service-to-service RPCs that the REST edge must never route (no http rule).
    const INTERNAL_RPCS: &[&str] = &[
        "ReserveStock",
        "CommitReservation",
        "ReleaseReservation",
        "GetProductsForPricing",
        "GetOrderForPayment",
        "RecordPayment",
        "GetIntentForOrder",
        "RefundPaymentIntent",
    ];

    /// The `google.api.http` rule of a method, if it has one.
    fn http_rule(
        pool: &prost_reflect::DescriptorPool,
        method: &prost_reflect::MethodDescriptor,
    ) -> Option<DynamicMessage> {
        let ext = pool
            .get_extension_by_name("google.api.http")
            .expect("google.api.http is in the pool");
        let options = method.options();
        if !options.has_extension(&ext) {
            return None;
        }
        match options.get_extension(&ext).into_owned() {
            Value::Message(rule) => Some(rule),
            other => panic!("google.api.http is a message, got {other:?}"),
        }
    }

    /// `(method, path)` of a rule; panics on a rule without a pattern.
    fn pattern(rule: &DynamicMessage) -> (String, String) {
        for verb in ["get", "put", "post", "delete", "patch"] {
            if rule.has_field_by_name(verb) {
                let path = rule
                    .get_field_by_name(verb)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned();
                return (verb.to_uppercase(), path);
            }
        }
        panic!("rule without a pattern: {rule:?}");
    }

    #[test]
    fn every_rpc_has_an_http_rule() {
        let pool = descriptor_pool();
        let mut rpcs = 0;
        let mut routes = Vec::new();
        for (name, expected) in SERVICES {
            let service = pool
                .get_service_by_name(name)
                .unwrap_or_else(|| panic!("{name} is in the pool"));
            assert_eq!(
                service.methods().len(),
                *expected,
                "number of RPCs of {name}"
            );
            for method in service.methods() {
                if INTERNAL_RPCS.contains(&method.name()) {
                    assert!(
                        http_rule(&pool, &method).is_none(),
                        "{} is internal",
                        method.full_name()
                    );
                    continue;
                }
                let rule = http_rule(&pool, &method).unwrap_or_else(|| {
                    panic!("{} has no google.api.http rule", method.full_name())
                });
                rpcs += 1;
                routes.push(pattern(&rule));
                if let Some(Value::List(extra)) = rule
                    .get_field_by_name("additional_bindings")
                    .map(|v| v.into_owned())
                {
                    for binding in extra {
                        routes.push(pattern(binding.as_message().unwrap()));
                    }
                }
            }
        }
        // 40 endpoints of Appendix A + 11 extras (auth/me, PUT /users/{id}, webhook, 7 cart routes,
        // GET /media/{path} for pictures) + 25 of phase 2 (wishlist 3, reviews 3, coupons 5,
        // checkout 2, shipping 2, tax rates 2, notifications 2, webhooks 6).
        assert_eq!(rpcs, 76);
        // + GET /products/category-list, PATCH /products/{id}, PATCH /carts/{id},
        // PATCH /users/me/addresses/{id}.
        assert_eq!(routes.len(), 80);
        let mut unique = routes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            routes.len(),
            "two rules share a method and path"
        );
        for (method, path) in [
            ("POST", "/auth/login"),
            ("GET", "/products/{id}"),
            ("GET", "/orders/all"),
            ("GET", "/orders/{id}/invoice"),
            ("DELETE", "/users/me/addresses/{id}"),
            ("GET", "/payments/intents/{id}/status"),
        ] {
            assert!(
                routes.contains(&(method.to_owned(), path.to_owned())),
                "{method} {path} is routed"
            );
        }
    }

    #[test]
    fn creates_answer_201() {
        let pool = descriptor_pool();
        let rest = pool
            .get_extension_by_name("transcoder.v1.rest")
            .expect("transcoder.v1.rest is in the pool");
        let created: Vec<String> = pool
            .services()
            .flat_map(|s| s.methods().collect::<Vec<_>>())
            .filter(|m| {
                let options = m.options();
                options.has_extension(&rest)
                    && options
                        .get_extension(&rest)
                        .as_message()
                        .unwrap()
                        .get_field_by_name("success_status")
                        .unwrap()
                        .as_i32()
                        == Some(201)
            })
            .map(|m| m.name().to_owned())
            .collect();
        for name in [
            "Register",
            "CreateProduct",
            "CreateOrder",
            "CreatePaymentIntent",
            "AddAddress",
            "AddCart",
        ] {
            assert!(created.contains(&name.to_owned()), "{name} answers 201");
        }
    }
}
