//! The auth service (the /auth routes) through the REST edge and over gRPC: every endpoint's
//! happy path, its documented errors, and the attacks of issue #4.

use crate::common;
use std::time::Duration;

use crate::common::identity::{PASSWORD, reset_token_in};
use crate::common::smtp::MailServer;
use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecom::proto::ecom::auth::v1 as pb;
use ecom::proto::ecom::auth::v1::auth_service_client::AuthServiceClient;
use serde_json::json;

#[tokio::test]
async fn register_returns_201_with_the_user_and_tokens() {
    let app = spawn_app().await;
    let body = json!({"email": "Jane@Example.com", "password": "SecurePass123", "firstName": "Jane", "lastName": "Smith"});
    let response = app.post_json("/auth/register", &body, None).await;
    assert_eq!(response.status().as_u16(), 201);
    let body = json(response).await;
    assert_eq!(body["user"]["email"], "Jane@Example.com");
    assert_eq!(body["user"]["firstName"], "Jane");
    assert_eq!(body["user"]["role"], "user");
    assert!(
        body["user"]["username"]
            .as_str()
            .unwrap()
            .starts_with("Jane")
    );
    assert!(body["token"].as_str().unwrap().split('.').count() == 3);
    assert!(body["refreshToken"].as_str().unwrap().len() >= 43);
    assert!(body["expiresAt"].is_string());
    assert!(body["user"].get("passwordHash").is_none());
}

#[tokio::test]
async fn register_reports_every_bad_field() {
    let app = spawn_app().await;
    let body = json!({"email": "not-an-email", "password": "short", "firstName": "J", "lastName": "x".repeat(51)});
    let err = assert_error(
        app.post_json("/auth/register", &body, None).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    for field in ["email", "password", "firstName", "lastName"] {
        assert!(err["details"][field].is_array(), "{field}: {err}");
    }
    // "short" fails length, uppercase and digit at once.
    assert_eq!(
        err["details"]["password"].as_array().unwrap().len(),
        3,
        "{err}"
    );
    let long = format!("A1{}", "x".repeat(127));
    let body = json!({"email": "a@b.co", "password": long, "firstName": "Jo", "lastName": "Do"});
    assert_error(
        app.post_json("/auth/register", &body, None).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
}

#[tokio::test]
async fn register_refuses_an_existing_email_whatever_its_case() {
    let app = spawn_app().await;
    app.register("taken@example.com").await;
    let body = json!({"email": "TAKEN@example.COM", "password": "SecurePass123", "firstName": "Jane", "lastName": "Smith"});
    assert_error(
        app.post_json("/auth/register", &body, None).await,
        409,
        "EMAIL_EXISTS",
    )
    .await;
}

#[tokio::test]
async fn passwords_are_argon2id_with_owasp_parameters() {
    let app = spawn_app().await;
    let account = app.register("hash@example.com").await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(account.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

#[tokio::test]
async fn login_answers_in_the_spec_and_dummyjson_shapes() {
    let app = spawn_app().await;
    let account = app.register("login@example.com").await;
    let response = app.login_raw("LOGIN@example.com", PASSWORD).await;
    assert_eq!(response.status().as_u16(), 200);
    let body = json(response).await;
    assert_eq!(body["token"], body["accessToken"]);
    assert_eq!(body["user"]["id"], account.id);
    assert_eq!(body["id"], account.id);
    assert_eq!(body["email"], "login@example.com");
    assert_eq!(body["firstName"], "Jane");
    assert!(
        body["username"].is_string()
            && body["refreshToken"].is_string()
            && body["expiresAt"].is_string()
    );

    // DummyJSON: username instead of email, and expiresInMins bounded by the maximum (60).
    let username = body["username"].as_str().unwrap().to_uppercase();
    let body = json!({"username": username, "password": PASSWORD, "expiresInMins": 100000});
    let response = app.post_json("/auth/login", &body, None).await;
    assert_eq!(response.status().as_u16(), 200);
    let body = json(response).await;
    let claims = app
        .tokens
        .verify(body["accessToken"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.exp - claims.iat, 3600);
    assert_eq!(claims.iss, "ecom");
    assert_eq!(claims.aud, "ecom-api");
    assert_eq!(claims.sub, account.id);
    assert!(!claims.jti.is_empty());

    let body = json!({"username": "", "password": ""});
    let err = assert_error(
        app.post_json("/auth/login", &body, None).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(
        err["details"]["email"].is_array() && err["details"]["password"].is_array(),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_emails_and_wrong_passwords_get_the_same_answer() {
    let app = spawn_app().await;
    app.register("known@example.com").await;
    let started = std::time::Instant::now();
    let unknown = assert_error(
        app.login_raw("nobody@example.com", PASSWORD).await,
        400,
        "INVALID_CREDENTIALS",
    )
    .await;
    let unknown_time = started.elapsed();
    let started = std::time::Instant::now();
    let wrong = assert_error(
        app.login_raw("known@example.com", "WrongPass123").await,
        400,
        "INVALID_CREDENTIALS",
    )
    .await;
    let wrong_time = started.elapsed();
    assert_eq!(unknown, wrong);
    // Both verify an argon2 hash: neither is an order of magnitude faster.
    assert!(
        unknown_time * 5 > wrong_time && wrong_time * 5 > unknown_time,
        "{unknown_time:?} vs {wrong_time:?}"
    );
}

#[tokio::test]
async fn five_failed_logins_lock_the_account_for_fifteen_minutes() {
    let app = spawn_app().await;
    app.register("victim@example.com").await;
    for _ in 0..4 {
        assert_error(
            app.login_raw("victim@example.com", "WrongPass123").await,
            400,
            "INVALID_CREDENTIALS",
        )
        .await;
    }
    let err = assert_error(
        app.login_raw("victim@example.com", "WrongPass123").await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    assert_eq!(err["details"]["retryAfter"], 900);
    // Even the right password is refused while locked.
    assert_error(
        app.login_raw("victim@example.com", PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    app.clock.advance(chrono::Duration::minutes(15));
    app.login("victim@example.com", PASSWORD).await;
}

#[tokio::test]
async fn failures_outside_the_window_do_not_add_up() {
    let app = spawn_app().await;
    app.register("slow@example.com").await;
    for _ in 0..4 {
        assert_error(
            app.login_raw("slow@example.com", "WrongPass123").await,
            400,
            "INVALID_CREDENTIALS",
        )
        .await;
    }
    app.clock.advance(chrono::Duration::minutes(16));
    assert_error(
        app.login_raw("slow@example.com", "WrongPass123").await,
        400,
        "INVALID_CREDENTIALS",
    )
    .await;
    app.login("slow@example.com", PASSWORD).await;
}

/// The spec's 401 answer of /auth/validate: `{isValid: false, message}` (plus the code).
async fn assert_invalid(response: reqwest::Response, code: &str) {
    assert_eq!(response.status().as_u16(), 401);
    let body = json(response).await;
    assert_eq!(body["isValid"], false, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], 401, "{body}");
    assert!(body.get("user").is_none(), "{body}");
}

#[tokio::test]
async fn validate_accepts_a_good_token_and_refuses_forged_ones() {
    let app = spawn_app().await;
    let account = app.register("validate@example.com").await;
    let response = app
        .post_json("/auth/validate", &json!({}), Some(&account.token))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body = json(response).await;
    assert_eq!(body["isValid"], true);
    assert_eq!(body["user"]["id"], account.id);

    // Tampered payload (role escalated), alg none, a refresh token, garbage: 401 UNAUTHORIZED.
    let parts: Vec<&str> = account.token.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let forged = URL_SAFE_NO_PAD.encode(payload.replace("\"user\"", "\"admin\""));
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let hs512 = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
        format!("{header}.{}.{}", parts[1], parts[2])
    };
    for bad in [
        tampered.as_str(),
        none.as_str(),
        hs512.as_str(),
        account.refresh_token.as_str(),
        "garbage",
    ] {
        let response = app.post_json("/auth/validate", &json!({}), Some(bad)).await;
        assert_invalid(response, "UNAUTHORIZED").await;
    }
    // Another issuer or audience.
    let other = ecom::tokens::Tokens::new(
        &secrecy::SecretString::from(TEST_JWT_SECRET),
        "someone-else",
        "ecom-api",
        Duration::from_secs(900),
        app.clock.clone(),
    );
    let (foreign, _) = other.mint(account.id, &account.email, ecom::tokens::Role::Admin, None);
    assert_invalid(
        app.post_json("/auth/validate", &json!({}), Some(&foreign))
            .await,
        "UNAUTHORIZED",
    )
    .await;

    // Expired: TOKEN_EXPIRED.
    app.clock.advance(chrono::Duration::minutes(16));
    assert_invalid(
        app.post_json("/auth/validate", &json!({}), Some(&account.token))
            .await,
        "TOKEN_EXPIRED",
    )
    .await;
    // No token.
    assert_invalid(
        app.post_json("/auth/validate", &json!({}), None).await,
        "UNAUTHORIZED",
    )
    .await;
}

#[tokio::test]
async fn auth_me_returns_the_current_user() {
    let app = spawn_app().await;
    let account = app.register("me@example.com").await;
    let body = json(app.get_as("/auth/me", &account.token).await).await;
    assert_eq!(body["id"], account.id);
    assert_eq!(body["email"], "me@example.com");
    assert_error(app.get("/auth/me").await, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn logout_revokes_the_access_token_and_the_refresh_family() {
    let app = spawn_app().await;
    let account = app.register("logout@example.com").await;
    let body = json!({"refreshToken": account.refresh_token});
    let response = app
        .post_json("/auth/logout", &body, Some(&account.token))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(json(response).await["message"], "Logged out successfully");
    // The jti is denied by every service, here users and auth.
    assert_error(
        app.get_as("/users/me", &account.token).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_invalid(
        app.post_json("/auth/validate", &json!({}), Some(&account.token))
            .await,
        "UNAUTHORIZED",
    )
    .await;
    app.assert_refresh_refused(&account.refresh_token).await;
    assert_error(
        app.post_json("/auth/logout", &json!({}), None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
}

/// Issue #12: the logout button of a frontend sends only the bearer token. That must end the
/// session: the login's refresh token dies with the access token.
#[tokio::test]
async fn logout_with_only_the_bearer_token_ends_the_session() {
    let app = spawn_app().await;
    let account = app.register("bearer-logout@example.com").await;
    let session = app.login(&account.email, PASSWORD).await;
    let logout = app
        .post_json("/auth/logout", &json!({}), Some(&session.token))
        .await;
    assert_eq!(logout.status().as_u16(), 200);
    app.assert_refresh_refused(&session.refresh_token).await;
    assert_error(
        app.get_as("/users/me", &session.token).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    // No body at all (not even `{}`) is the same logout.
    let other = app.login(&account.email, PASSWORD).await;
    let bare = app
        .request(reqwest::Method::POST, "/auth/logout", Some(&other.token))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 200);
    app.assert_refresh_refused(&other.refresh_token).await;
    // Logging out twice is not an error; a forged token still is.
    let again = app
        .post_json("/auth/logout", &json!({}), Some(&session.token))
        .await;
    assert_eq!(again.status().as_u16(), 200);
    assert_error(
        app.post_json("/auth/logout", &json!({}), Some("forged.token.here"))
            .await,
        401,
        "UNAUTHORIZED",
    )
    .await;
}

/// After a rotation the newest access token still names the session: logging out with it kills
/// the refresh tokens from before and after the rotation.
#[tokio::test]
async fn logout_after_a_rotation_kills_the_old_and_the_new_refresh_token() {
    let app = spawn_app().await;
    let account = app.register("rotated-logout@example.com").await;
    let rotated = app.refresh(&account.refresh_token).await;
    assert_eq!(rotated.status().as_u16(), 200);
    let rotated = json(rotated).await;
    let token = rotated["token"].as_str().unwrap();
    let newest = rotated["refreshToken"].as_str().unwrap();
    let logout = app.post_json("/auth/logout", &json!({}), Some(token)).await;
    assert_eq!(logout.status().as_u16(), 200);
    app.assert_refresh_refused(newest).await;
    app.assert_refresh_refused(&account.refresh_token).await;
}

/// Logout is per session: the user's other session stays signed in and can refresh.
#[tokio::test]
async fn logout_leaves_the_other_sessions_of_the_user_signed_in() {
    let app = spawn_app().await;
    let account = app.register("two-sessions@example.com").await;
    let laptop = app.login(&account.email, PASSWORD).await;
    let phone = app.login(&account.email, PASSWORD).await;
    let logout = app
        .post_json("/auth/logout", &json!({}), Some(&laptop.token))
        .await;
    assert_eq!(logout.status().as_u16(), 200);
    app.assert_refresh_refused(&laptop.refresh_token).await;
    assert_eq!(app.get_as("/users/me", &phone.token).await.status(), 200);
    assert_eq!(app.refresh(&phone.refresh_token).await.status(), 200);
    // Someone else's refresh token in the body is not revoked by this caller's logout.
    let mallory = app.register("mallory-logout@example.com").await;
    let body = json!({"refreshToken": account.refresh_token});
    let logout = app
        .post_json("/auth/logout", &body, Some(&mallory.token))
        .await;
    assert_eq!(logout.status().as_u16(), 200);
    assert_eq!(app.refresh(&account.refresh_token).await.status(), 200);
}

/// Over gRPC the same: Logout with an empty request ends the caller's session.
#[tokio::test]
async fn logout_over_grpc_ends_the_session() {
    let app = spawn_app().await;
    let account = app.register("grpc-logout@example.com").await;
    let mut client = AuthServiceClient::new(app.grpc_channel().await);
    client
        .logout(authorized(pb::LogoutRequest::default(), &account.token))
        .await
        .expect("logout");
    let err = client
        .refresh(pb::RefreshRequest {
            refresh_token: account.refresh_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // Twice is fine.
    client
        .logout(authorized(pb::LogoutRequest::default(), &account.token))
        .await
        .expect("a second logout");
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() {
    let app = spawn_app().await;
    let account = app.register("refresh@example.com").await;
    let response = app.refresh(&account.refresh_token).await;
    assert_eq!(response.status().as_u16(), 200);
    let first = json(response).await;
    assert_eq!(first["token"], first["accessToken"]);
    assert!(first["expiresAt"].is_string());
    let rotated = first["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(rotated, account.refresh_token);
    assert!(app.tokens.verify(first["token"].as_str().unwrap()).is_ok());

    // The old token again: refused, and the whole family dies with it.
    app.assert_refresh_refused(&account.refresh_token).await;
    app.assert_refresh_refused(&rotated).await;
    app.assert_refresh_refused("made-up").await;
    assert_error(app.refresh("").await, 400, "VALIDATION_ERROR").await;
}

#[tokio::test]
async fn refresh_tokens_expire_after_seven_days() {
    let app = spawn_app().await;
    let account = app.register("week@example.com").await;
    app.clock.advance(chrono::Duration::days(7));
    app.assert_refresh_refused(&account.refresh_token).await;
}

#[tokio::test]
async fn of_two_concurrent_refreshes_exactly_one_wins() {
    let app = spawn_app().await;
    let account = app.register("race@example.com").await;
    let (a, b) = tokio::join!(
        app.refresh(&account.refresh_token),
        app.refresh(&account.refresh_token)
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 401]);
}

#[tokio::test]
async fn forgot_password_answers_the_same_and_mails_a_single_use_link() {
    let (app, smtp) = common::smtp::app_with_mail().await;
    let account = app.register("forgot@example.com").await;
    // Lock the account first: the reset must unlock it.
    for _ in 0..5 {
        app.login_raw("forgot@example.com", "WrongPass123").await;
    }
    assert_error(
        app.login_raw("forgot@example.com", PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;

    let known = app
        .post_json(
            "/auth/forgot-password",
            &json!({"email": "forgot@example.com"}),
            None,
        )
        .await;
    assert_eq!(known.status().as_u16(), 200);
    let unknown = app
        .post_json(
            "/auth/forgot-password",
            &json!({"email": "ghost@example.com"}),
            None,
        )
        .await;
    assert_eq!(unknown.status().as_u16(), 200);
    assert_eq!(json(known).await, json(unknown).await);

    let mail = smtp
        .wait_for("forgot@example.com", 1, Duration::from_secs(10))
        .await
        .remove(0);
    // The envelope sender is EMAIL_FROM's address (its default here).
    assert_eq!(mail.from, "<no-reply@ecom.local>");
    assert!(
        mail.data
            .contains("http://localhost:5173/reset-password?token="),
        "{}",
        mail.data
    );
    let token = reset_token_in(&mail.data);
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    assert!(
        smtp.mails()
            .iter()
            .all(|m| !m.to.contains(&"ghost@example.com".to_owned()))
    );
    // Stored hashed, never in the clear.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM password_resets")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_ne!(stored, token.as_bytes());

    let body = json!({"token": token, "newPassword": "BrandNew456"});
    let response = app.post_json("/auth/reset-password", &body, None).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        json(response).await["message"],
        "Password reset successfully"
    );
    // Single use.
    assert_error(
        app.post_json("/auth/reset-password", &body, None).await,
        400,
        "INVALID_RESET_TOKEN",
    )
    .await;
    // Refresh tokens are revoked; the old password is gone; the lockout is cleared.
    app.assert_refresh_refused(&account.refresh_token).await;
    assert_error(
        app.login_raw("forgot@example.com", PASSWORD).await,
        400,
        "INVALID_CREDENTIALS",
    )
    .await;
    app.login("forgot@example.com", "BrandNew456").await;
    // And a notification mail follows.
    let mails = smtp
        .wait_for("forgot@example.com", 2, Duration::from_secs(10))
        .await;
    assert!(
        mails[1]
            .data
            .contains("password of your account was just reset"),
        "{}",
        mails[1].data
    );
}

#[tokio::test]
async fn reset_links_come_from_configuration_not_the_host_header() {
    let smtp = MailServer::start().await;
    let port = smtp.port.to_string();
    let app = spawn_app_with(&[
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port,
        "--smtp-tls",
        "none",
        "--frontend-url",
        "https://shop.example.com/",
    ])
    .await;
    app.register("host@example.com").await;
    let response = app
        .request(reqwest::Method::POST, "/auth/forgot-password", None)
        .header("host", "evil.example.net")
        .header("x-forwarded-host", "evil.example.net")
        .json(&json!({"email": "host@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mail = smtp
        .wait_for("host@example.com", 1, Duration::from_secs(10))
        .await
        .remove(0);
    assert!(
        mail.data
            .contains("https://shop.example.com/reset-password?token="),
        "{}",
        mail.data
    );
    assert!(!mail.data.contains("evil"));
}

#[tokio::test]
async fn reset_tokens_expire_after_thirty_minutes() {
    let (app, smtp) = common::smtp::app_with_mail().await;
    app.register("late@example.com").await;
    app.post_json(
        "/auth/forgot-password",
        &json!({"email": "late@example.com"}),
        None,
    )
    .await;
    let mail = smtp
        .wait_for("late@example.com", 1, Duration::from_secs(10))
        .await
        .remove(0);
    let token = reset_token_in(&mail.data);
    app.clock.advance(chrono::Duration::minutes(31));
    let body = json!({"token": token, "newPassword": "BrandNew456"});
    assert_error(
        app.post_json("/auth/reset-password", &body, None).await,
        400,
        "RESET_TOKEN_EXPIRED",
    )
    .await;
    let body = json!({"token": "unknown", "newPassword": "BrandNew456"});
    assert_error(
        app.post_json("/auth/reset-password", &body, None).await,
        400,
        "INVALID_RESET_TOKEN",
    )
    .await;
    let body = json!({"token": token, "newPassword": "weak"});
    assert_error(
        app.post_json("/auth/reset-password", &body, None).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
}

#[tokio::test]
async fn a_mail_server_that_is_down_loses_nothing() {
    // Reserve a port, leave it closed while the reset is requested, then open the server.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = port.to_string();
    let app = spawn_app_with(&[
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &p,
        "--smtp-tls",
        "none",
    ])
    .await;
    app.register("patient@example.com").await;
    app.post_json(
        "/auth/forgot-password",
        &json!({"email": "patient@example.com"}),
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM mail_outbox")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(attempts >= 1);
    let smtp = MailServer::start_on(port).await;
    let mail = smtp
        .wait_for("patient@example.com", 1, Duration::from_secs(15))
        .await
        .remove(0);
    assert!(mail.data.contains("reset-password?token="));
}

#[tokio::test]
async fn change_password_checks_the_current_one_and_revokes_other_sessions() {
    let app = spawn_app().await;
    let account = app.register("change@example.com").await;
    // A second session (another device), which the change must end.
    let other_device = app.login("change@example.com", PASSWORD).await;
    let body = json!({"currentPassword": "WrongPass123", "newPassword": "BrandNew456"});
    assert_error(
        app.post_json("/auth/change-password", &body, Some(&account.token))
            .await,
        400,
        "INVALID_CREDENTIALS",
    )
    .await;
    let body = json!({"currentPassword": PASSWORD, "newPassword": "weak"});
    assert_error(
        app.post_json("/auth/change-password", &body, Some(&account.token))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    let body = json!({"currentPassword": PASSWORD, "newPassword": "BrandNew456"});
    assert_error(
        app.post_json("/auth/change-password", &body, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let response = app
        .post_json("/auth/change-password", &body, Some(&account.token))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        json(response).await["message"],
        "Password changed successfully"
    );
    app.assert_refresh_refused(&other_device.refresh_token)
        .await;
    // The caller's own session goes on.
    let response = app.refresh(&account.refresh_token).await;
    assert_eq!(response.status().as_u16(), 200);
    app.login("change@example.com", "BrandNew456").await;
}

#[tokio::test]
async fn auth_prefixed_resources_need_a_valid_token() {
    let app = spawn_app().await;
    app.seed_catalog(3).await;
    let account = app.register("alias@example.com").await;
    // Without a token, or with a bad one: 401 in the contract's shape.
    assert_error(app.get("/auth/products/1").await, 401, "UNAUTHORIZED").await;
    assert_error(
        app.get_as("/auth/products/1", "garbage").await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    // With one: the same resource as without the prefix, query string included.
    let plain = json(app.get("/products/1").await).await;
    let aliased = app.get_as("/auth/products/1", &account.token).await;
    assert_eq!(aliased.status().as_u16(), 200);
    assert_eq!(json(aliased).await, plain);
    let page = json(app.get_as("/auth/products?limit=2", &account.token).await).await;
    assert_eq!(page["limit"], 2);
    assert_eq!(page["products"].as_array().unwrap().len(), 2);
    // Unknown resources stay 404; auth's own routes keep their meaning (405, not an alias).
    assert_error(
        app.get_as("/auth/nothing/here", &account.token).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_error(app.get("/auth/login").await, 405, "METHOD_NOT_ALLOWED").await;
    // An expired token: TOKEN_EXPIRED, as everywhere.
    app.clock.advance(chrono::Duration::minutes(16));
    assert_error(
        app.get_as("/auth/products/1", &account.token).await,
        401,
        "TOKEN_EXPIRED",
    )
    .await;
}

#[tokio::test]
async fn per_account_login_limit_answers_429_with_retry_after() {
    // The per-address login limit raised out of the way: this is the per-account one.
    let app = spawn_app_with(&[
        "--rate-limit-enabled",
        "true",
        "--rate-limit-login-max",
        "100",
    ])
    .await;
    app.register("busy@example.com").await;
    for _ in 0..10 {
        app.login("busy@example.com", PASSWORD).await;
    }
    let response = app.login_raw("busy@example.com", PASSWORD).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after));
    let body = assert_error(response, 429, "RATE_LIMITED").await;
    assert_eq!(body["details"]["retryAfter"], retry_after);
}

#[tokio::test]
async fn login_rate_limit_holds_across_two_instances_sharing_redis() {
    let first = common::identity::spawn_app_with_rate_limits(None, &[]).await;
    let second = common::identity::spawn_app_with_rate_limits(Some(&first.redis_prefix), &[]).await;
    let body = json!({"email": "nobody@example.com", "password": "WrongPass123"});
    for app in [&first, &second, &first, &second, &first] {
        assert_ne!(
            app.post_json("/auth/login", &body, None)
                .await
                .status()
                .as_u16(),
            429
        );
    }
    let limited = second.post_json("/auth/login", &body, None).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_error(limited, 429, "RATE_LIMITED").await;
}

#[tokio::test]
async fn the_same_rules_hold_over_grpc() {
    let app = spawn_app().await;
    let account = app.register("grpc@example.com").await;
    let mut client = AuthServiceClient::new(app.grpc_channel().await);
    let err = client
        .login(pb::LoginRequest {
            email: "grpc@example.com".into(),
            password: "WrongPass123".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let ok = client
        .login(pb::LoginRequest {
            username: "GRPC@example.com".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.id, account.id);
    let err = client
        .register(pb::RegisterRequest {
            email: "x".into(),
            password: "y".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // Over gRPC "not valid" is an answer, not an error.
    let invalid = client
        .validate(authorized(pb::ValidateRequest {}, "forged.token.here"))
        .await
        .unwrap()
        .into_inner();
    assert!(!invalid.is_valid);
    assert_eq!(invalid.code.as_deref(), Some("UNAUTHORIZED"));
    let valid = client
        .validate(authorized(pb::ValidateRequest {}, &ok.token))
        .await
        .unwrap()
        .into_inner();
    assert!(valid.is_valid);
}
