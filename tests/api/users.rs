//! The users service (the /users routes) through the REST edge and over gRPC: every endpoint's
//! happy path, its documented errors, and the attacks of issue #4 (BOLA, mass assignment,
//! forged images, admin-only changes).

use crate::common::identity::PASSWORD;
use crate::common::*;
use ecom::proto::ecom::users::v1 as pb;
use ecom::proto::ecom::users::v1::users_service_client::UsersServiceClient;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

fn address(label: &str) -> Value {
    json!({
        "label": label, "firstName": "John", "lastName": "Doe", "address": "123 Main St",
        "city": "New York", "state": "NY", "zipCode": "10001", "country": "USA",
        "phone": "+1234567890", "isDefault": false
    })
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(width, height, image::Rgba([200, 10, 10, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn upload(
    app: &TestApp,
    token: &str,
    bytes: Vec<u8>,
    content_type: &str,
) -> reqwest::Response {
    let part = Part::bytes(bytes)
        .file_name("avatar.png")
        .mime_str(content_type)
        .unwrap();
    app.request(reqwest::Method::POST, "/users/me/avatar", Some(token))
        .multipart(Form::new().part("image", part))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn users_me_returns_the_full_profile() {
    let app = spawn_app().await;
    let account = app.register("profile@example.com").await;
    let body = json(app.get_as("/users/me", &account.token).await).await;
    assert_eq!(body["id"], account.id);
    assert_eq!(body["email"], "profile@example.com");
    assert_eq!(body["role"], "user");
    assert!(body["createdAt"].is_string());
    assert_error(app.get("/users/me").await, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn put_users_me_validates_and_writes_through_the_cache() {
    let app = spawn_app().await;
    let account = app.register("update@example.com").await;
    app.get_as("/users/me", &account.token).await; // cached now
    let body = json!({"firstName": "Janet", "phone": "+1987654321", "age": 31, "gender": "female"});
    let response = app.put_json("/users/me", &body, Some(&account.token)).await;
    assert_eq!(response.status().as_u16(), 200);
    let updated = json(response).await;
    assert_eq!(updated["firstName"], "Janet");
    assert_eq!(updated["phone"], "+1987654321");
    assert_eq!(updated["age"], 31);
    let again = json(app.get_as("/users/me", &account.token).await).await;
    assert_eq!(again["firstName"], "Janet");

    let bad = json!({"firstName": "J", "email": "nope", "age": 200, "phone": "call me"});
    let err = assert_error(
        app.put_json("/users/me", &bad, Some(&account.token)).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    for field in ["firstName", "email", "age", "phone"] {
        assert!(err["details"][field].is_array(), "{field}: {err}");
    }
}

#[tokio::test]
async fn put_users_me_refuses_mass_assignment() {
    let app = spawn_app().await;
    let account = app.register("mass@example.com").await;
    for body in [
        json!({"role": "admin"}),
        json!({"id": 1}),
        json!({"password": "Hacked12345"}),
        json!({"passwordHash": "x"}),
    ] {
        let err = assert_error(
            app.put_json("/users/me", &body, Some(&account.token)).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        let field = body.as_object().unwrap().keys().next().unwrap().clone();
        assert!(err["details"][&field].is_array(), "{err}");
    }
    let me = json(app.get_as("/users/me", &account.token).await).await;
    assert_eq!(me["role"], "user");
    assert_eq!(me["id"], account.id);
}

#[tokio::test]
async fn a_new_email_must_be_unique() {
    let app = spawn_app().await;
    app.register("first@example.com").await;
    let second = app.register("second@example.com").await;
    let body = json!({"email": "FIRST@example.com"});
    assert_error(
        app.put_json("/users/me", &body, Some(&second.token)).await,
        409,
        "EMAIL_EXISTS",
    )
    .await;
}

#[tokio::test]
async fn get_user_shows_full_profiles_to_owner_and_admin_and_public_fields_to_others() {
    let app = spawn_app().await;
    let alice = app.register("alice@example.com").await;
    let bob = app.register("bob@example.com").await;
    let admin = app.register_admin("boss@example.com").await;
    let own = json(
        app.get_as(&format!("/users/{}", alice.id), &alice.token)
            .await,
    )
    .await;
    assert_eq!(own["email"], "alice@example.com");
    let as_admin = json(
        app.get_as(&format!("/users/{}", alice.id), &admin.token)
            .await,
    )
    .await;
    assert_eq!(as_admin["email"], "alice@example.com");
    // BOLA: Bob sees only public fields of Alice.
    let public = json(
        app.get_as(&format!("/users/{}", alice.id), &bob.token)
            .await,
    )
    .await;
    assert_eq!(public["id"], alice.id);
    assert_eq!(public["firstName"], "Jane");
    for private in ["email", "phone", "username", "role", "createdAt"] {
        assert!(
            public.get(private).is_none() || public[private] == "" || public[private] == 0,
            "{private}: {public}"
        );
    }
    assert_error(
        app.get_as("/users/999999", &bob.token).await,
        404,
        "USER_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn put_user_by_id_is_for_oneself_or_an_admin() {
    let app = spawn_app().await;
    let alice = app.register("alice2@example.com").await;
    let bob = app.register("bob2@example.com").await;
    let admin = app.register_admin("boss2@example.com").await;
    let body = json!({"firstName": "Mallory"});
    assert_error(
        app.put_json(&format!("/users/{}", alice.id), &body, Some(&bob.token))
            .await,
        403,
        "FORBIDDEN",
    )
    .await;
    // A customer cannot make themself an admin.
    let promote = json!({"role": "admin"});
    assert_error(
        app.put_json(&format!("/users/{}", bob.id), &promote, Some(&bob.token))
            .await,
        403,
        "FORBIDDEN",
    )
    .await;
    let own = app
        .put_json(
            &format!("/users/{}", bob.id),
            &json!({"lastName": "Builder"}),
            Some(&bob.token),
        )
        .await;
    assert_eq!(json(own).await["lastName"], "Builder");
    let by_admin = app
        .put_json(
            &format!("/users/{}", alice.id),
            &promote,
            Some(&admin.token),
        )
        .await;
    assert_eq!(by_admin.status().as_u16(), 200);
    assert_eq!(json(by_admin).await["role"], "admin");
    assert_error(
        app.put_json("/users/999999", &body, Some(&admin.token))
            .await,
        404,
        "USER_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn a_customer_gets_403_changing_roles_over_grpc_too() {
    let app = spawn_app().await;
    let alice = app.register("alice3@example.com").await;
    let bob = app.register("bob3@example.com").await;
    let mut client = UsersServiceClient::new(app.grpc_channel().await);
    let promote = pb::UpdateUserRequest {
        id: bob.id,
        role: Some(2),
        ..Default::default()
    };
    let err = client
        .update_user(authorized(promote, &bob.token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let other = pb::UpdateUserRequest {
        id: alice.id,
        first_name: Some("Mallory".into()),
        ..Default::default()
    };
    let err = client
        .update_user(authorized(other, &bob.token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let err = client.get_me(pb::GetMeRequest {}).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn preferences_have_defaults_and_are_validated() {
    let app = spawn_app().await;
    let account = app.register("prefs@example.com").await;
    let defaults = json(app.get_as("/users/me/preferences", &account.token).await).await;
    assert_eq!(
        defaults,
        json!({"theme": "light", "notifications": true, "emailNotifications": true, "currency": "USD", "language": "en"})
    );
    let body =
        json!({"theme": "dark", "emailNotifications": false, "currency": "eur", "language": "de"});
    let updated = json(
        app.put_json("/users/me/preferences", &body, Some(&account.token))
            .await,
    )
    .await;
    assert_eq!(
        updated,
        json!({"theme": "dark", "notifications": true, "emailNotifications": false, "currency": "EUR", "language": "de"})
    );
    assert_eq!(
        json(app.get_as("/users/me/preferences", &account.token).await).await,
        updated
    );
    let bad = json!({"currency": "XYZ", "language": "english"});
    let err = assert_error(
        app.put_json("/users/me/preferences", &bad, Some(&account.token))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(
        err["details"]["currency"].is_array() && err["details"]["language"].is_array(),
        "{err}"
    );
    assert_error(
        app.put_json(
            "/users/me/preferences",
            &json!({"theme": "blue"}),
            Some(&account.token),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
}

#[tokio::test]
async fn addresses_keep_exactly_one_default_and_belong_to_their_owner() {
    let app = spawn_app().await;
    let alice = app.register("addr@example.com").await;
    let bob = app.register("addr2@example.com").await;
    let home = app
        .post_json("/users/me/addresses", &address("Home"), Some(&alice.token))
        .await;
    assert_eq!(home.status().as_u16(), 201);
    let home = json(home).await;
    assert_eq!(home["isDefault"], true, "the first address is the default");
    assert_eq!(home["zipCode"], "10001");
    let mut work = address("Work");
    work["isDefault"] = json!(true);
    let work = json(
        app.post_json("/users/me/addresses", &work, Some(&alice.token))
            .await,
    )
    .await;
    let list = json(app.get_as("/users/me/addresses", &alice.token).await).await;
    let list = list.as_array().expect("a bare array");
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|a| a["isDefault"] == true).count(), 1);
    assert_eq!(list[0]["id"], work["id"]);

    // Switch back with an update.
    let path = format!("/users/me/addresses/{}", home["id"]);
    let updated = json(
        app.put_json(
            &path,
            &json!({"isDefault": true, "city": "Boston"}),
            Some(&alice.token),
        )
        .await,
    )
    .await;
    assert_eq!(updated["city"], "Boston");
    let list = json(app.get_as("/users/me/addresses", &alice.token).await).await;
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .filter(|a| a["isDefault"] == true)
            .count(),
        1
    );
    assert_eq!(list[0]["id"], home["id"]);

    // BOLA: Bob can neither see, change nor delete Alice's address.
    assert_eq!(
        json(app.get_as("/users/me/addresses", &bob.token).await).await,
        json!([])
    );
    assert_error(
        app.put_json(&path, &json!({"city": "Gotham"}), Some(&bob.token))
            .await,
        404,
        "ADDRESS_NOT_FOUND",
    )
    .await;
    assert_error(
        app.delete(&path, Some(&bob.token)).await,
        404,
        "ADDRESS_NOT_FOUND",
    )
    .await;

    // Validation.
    let bad = json!({"firstName": "", "lastName": "D", "address": "", "city": "", "zipCode": "!", "country": ""});
    let err = assert_error(
        app.post_json("/users/me/addresses", &bad, Some(&alice.token))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    for field in [
        "firstName",
        "lastName",
        "address",
        "city",
        "zipCode",
        "country",
    ] {
        assert!(err["details"][field].is_array(), "{field}: {err}");
    }
    assert_error(
        app.put_json(&path, &json!({"zipCode": "!"}), Some(&alice.token))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    // Deleting the default promotes the other one.
    let deleted = app.delete(&path, Some(&alice.token)).await;
    assert_eq!(deleted.status().as_u16(), 204);
    let list = json(app.get_as("/users/me/addresses", &alice.token).await).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["isDefault"], true);
    assert_error(
        app.delete(&path, Some(&alice.token)).await,
        404,
        "ADDRESS_NOT_FOUND",
    )
    .await;
}

/// Issue #12: an edit form sends `isDefault: false` with its checkbox untouched. On the only
/// address (the default) the edit applies and the address stays the default.
#[tokio::test]
async fn the_only_address_can_be_edited_and_stays_the_default() {
    let app = spawn_app().await;
    let alice = app.register("only-address@example.com").await;
    let home = json(
        app.post_json("/users/me/addresses", &address("Home"), Some(&alice.token))
            .await,
    )
    .await;
    assert_eq!(home["isDefault"], true);
    let path = format!("/users/me/addresses/{}", home["id"]);
    let mut edit = address("Home");
    edit["city"] = json!("Boston");
    let response = app.put_json(&path, &edit, Some(&alice.token)).await;
    assert_eq!(response.status().as_u16(), 200);
    let updated = json(response).await;
    assert_eq!(updated["city"], "Boston");
    assert_eq!(updated["isDefault"], true);
    // PATCH is the same partial update.
    let response = app
        .request(reqwest::Method::PATCH, &path, Some(&alice.token))
        .json(&json!({"city": "Denver", "isDefault": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let patched = json(response).await;
    assert_eq!(patched["city"], "Denver");
    assert_eq!(patched["isDefault"], true);
    let list = json(app.get_as("/users/me/addresses", &alice.token).await).await;
    assert_eq!(list[0]["city"], "Denver");
    assert_eq!(list[0]["isDefault"], true);
}

/// With two addresses, `isDefault: false` on the default keeps it the default; the other one
/// takes over only when it is set `isDefault: true`.
#[tokio::test]
async fn the_default_moves_only_when_another_address_is_made_the_default() {
    let app = spawn_app().await;
    let alice = app.register("two-addresses@example.com").await;
    let home = json(
        app.post_json("/users/me/addresses", &address("Home"), Some(&alice.token))
            .await,
    )
    .await;
    let work = json(
        app.post_json("/users/me/addresses", &address("Work"), Some(&alice.token))
            .await,
    )
    .await;
    assert_eq!(work["isDefault"], false);
    let home_path = format!("/users/me/addresses/{}", home["id"]);
    let mut edit = address("Home");
    edit["city"] = json!("Boston");
    let updated = json(app.put_json(&home_path, &edit, Some(&alice.token)).await).await;
    assert_eq!(updated["city"], "Boston");
    assert_eq!(updated["isDefault"], true);
    let defaults = |list: &Value| -> Vec<Value> {
        list.as_array()
            .unwrap()
            .iter()
            .filter(|a| a["isDefault"] == true)
            .map(|a| a["id"].clone())
            .collect()
    };
    let list = json(app.get_as("/users/me/addresses", &alice.token).await).await;
    assert_eq!(defaults(&list), vec![home["id"].clone()]);

    // Editing the other one with false leaves it not the default.
    let work_path = format!("/users/me/addresses/{}", work["id"]);
    let mut edit = address("Work");
    edit["city"] = json!("Chicago");
    let updated = json(app.put_json(&work_path, &edit, Some(&alice.token)).await).await;
    assert_eq!(updated["isDefault"], false);
    // Setting it true moves the default.
    edit["isDefault"] = json!(true);
    let updated = json(app.put_json(&work_path, &edit, Some(&alice.token)).await).await;
    assert_eq!(updated["isDefault"], true);
    let list = json(app.get_as("/users/me/addresses", &alice.token).await).await;
    assert_eq!(defaults(&list), vec![work["id"].clone()]);
}

#[tokio::test]
async fn avatars_are_checked_by_content_and_re_encoded() {
    let app = spawn_app().await;
    let account = app.register("avatar@example.com").await;
    let response = upload(&app, &account.token, png(1200, 800), "image/png").await;
    assert_eq!(response.status().as_u16(), 200);
    let body = json(response).await;
    assert_eq!(body["id"], account.id);
    let url = body["image"].as_str().unwrap().to_owned();
    // Absolute, on ecom itself (PUBLIC_URL's default; the test's edge is on another port).
    let path = url
        .strip_prefix("http://localhost:3000")
        .unwrap_or_else(|| panic!("not under PUBLIC_URL: {url}"));
    assert!(path.starts_with("/uploads/avatar-"), "{url}");
    let served = app
        .client
        .get(format!("{}{path}", app.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    let bytes = served.bytes().await.unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert!(img.width() <= 512 && img.height() <= 512);
    assert_eq!(
        json(app.get_as("/users/me", &account.token).await).await["image"],
        url
    );

    // A script claiming to be a PNG, and a truncated PNG: 415.
    let fake = b"<script>alert(1)</script>".to_vec();
    assert_error(
        upload(&app, &account.token, fake, "image/png").await,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    let mut truncated = png(64, 64);
    truncated.truncate(40);
    assert_error(
        upload(&app, &account.token, truncated, "image/png").await,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    assert_error(
        upload(&app, &account.token, gif, "image/gif").await,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
}

#[tokio::test]
async fn oversized_avatars_are_413() {
    let app = spawn_app_with(&["--upload-max-size", "10000"]).await;
    let account = app.register("big@example.com").await;
    let mut big = png(8, 8);
    big.extend(std::iter::repeat_n(0u8, 20_000));
    let response = upload(&app, &account.token, big, "image/png").await;
    assert_eq!(response.status().as_u16(), 413);
}

#[tokio::test]
async fn deleting_the_account_revokes_tokens_and_a_login_restores_it() {
    let app = spawn_app().await;
    let account = app.register("leaver@example.com").await;
    let other_session = app.login("leaver@example.com", PASSWORD).await;
    app.clock.advance(chrono::Duration::seconds(1));
    let err = assert_error(
        app.post_json(
            "/users/me/delete",
            &json!({"password": "WrongPass123"}),
            Some(&account.token),
        )
        .await,
        400,
        "INVALID_CREDENTIALS",
    )
    .await;
    assert!(err["message"].is_string());
    assert_error(
        app.post_json("/users/me/delete", &json!({}), Some(&account.token))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    let body = json!({"password": PASSWORD, "reason": "No longer needed"});
    let response = app
        .post_json("/users/me/delete", &body, Some(&account.token))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        json(response).await["message"],
        "Account scheduled for deletion"
    );
    // Every token dies at once.
    assert_error(
        app.get_as("/users/me", &account.token).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(
        app.get_as("/users/me", &other_session.token).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(
        app.refresh(&other_session.refresh_token).await,
        401,
        "INVALID_REFRESH_TOKEN",
    )
    .await;
    // Logging in during the grace period restores the account.
    app.clock.advance(chrono::Duration::days(10));
    let back = app.login("leaver@example.com", PASSWORD).await;
    let me = json(app.get_as("/users/me", &back.token).await).await;
    assert_eq!(me["email"], "leaver@example.com");
    let pending: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT deletion_requested_at FROM users WHERE id = $1")
            .bind(account.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(pending.is_none());
}

#[tokio::test]
async fn the_purge_anonymises_accounts_after_the_grace_period() {
    let app = spawn_app().await;
    let account = app.register("gone@example.com").await;
    app.post_json(
        "/users/me/addresses",
        &address("Home"),
        Some(&account.token),
    )
    .await;
    app.post_json(
        "/users/me/delete",
        &json!({"password": PASSWORD}),
        Some(&account.token),
    )
    .await;
    app.clock.advance(chrono::Duration::days(29));
    assert_eq!(
        ecom::users::purge_expired(
            &app.db,
            app.clock.now(),
            std::time::Duration::from_secs(30 * 86_400)
        )
        .await
        .unwrap(),
        0
    );
    app.clock.advance(chrono::Duration::days(2));
    // Past the grace period the account can no longer log in, even before the purge runs.
    assert_error(
        app.login_raw("gone@example.com", PASSWORD).await,
        400,
        "INVALID_CREDENTIALS",
    )
    .await;
    assert_eq!(
        ecom::users::purge_expired(
            &app.db,
            app.clock.now(),
            std::time::Duration::from_secs(30 * 86_400)
        )
        .await
        .unwrap(),
        1
    );
    let (email, first, phone): (String, String, String) =
        sqlx::query_as("SELECT email, first_name, phone FROM users WHERE id = $1")
            .bind(account.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(email.ends_with("@deleted.invalid"));
    assert_eq!(first, "Deleted");
    assert_eq!(phone, "");
    let addresses: i64 = sqlx::query_scalar("SELECT count(*) FROM addresses WHERE user_id = $1")
        .bind(account.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(addresses, 0);
    // The email is free again.
    app.register("gone@example.com").await;
}

#[tokio::test]
async fn a_customer_gets_403_on_admin_rpcs_over_rest_and_grpc() {
    use ecom::proto::ecom::catalog::v1 as catalog;
    use ecom::proto::ecom::catalog::v1::catalog_service_client::CatalogServiceClient;
    let app = spawn_app().await;
    let customer = app.register("customer@example.com").await;
    assert_error(
        app.delete("/products/1", Some(&customer.token)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    let mut client = CatalogServiceClient::new(app.grpc_channel().await);
    let err = client
        .delete_product(authorized(
            catalog::DeleteProductRequest { id: 1 },
            &customer.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn demo_users_and_the_bootstrap_admin_can_log_in() {
    let app = spawn_app().await;
    ecom::auth::seed::seed_demo_users(&app.db).await.unwrap();
    ecom::auth::seed::seed_demo_users(&app.db).await.unwrap(); // idempotent
    let emily = app
        .post_json(
            "/auth/login",
            &json!({"username": "emilys", "password": "EmilyPass123"}),
            None,
        )
        .await;
    assert_eq!(emily.status().as_u16(), 200);
    let demo_admin = json(
        app.post_json(
            "/auth/login",
            &json!({"username": "admin", "password": "AdminPass123"}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(demo_admin["user"]["role"], "admin");

    let password = secrecy::SecretString::from("OpsPassword123");
    let id = ecom::auth::seed::ensure_admin(&app.db, "ops@example.com", &password)
        .await
        .unwrap();
    assert_eq!(
        ecom::auth::seed::ensure_admin(&app.db, "OPS@example.com", &password)
            .await
            .unwrap(),
        id
    );
    let ops = app.login("ops@example.com", "OpsPassword123").await;
    let me = json(app.get_as("/users/me", &ops.token).await).await;
    assert_eq!(me["role"], "admin");
    assert!(
        ecom::auth::seed::ensure_admin(
            &app.db,
            "ops@example.com",
            &secrecy::SecretString::from("weak")
        )
        .await
        .is_err()
    );
}
