//! Identity helpers for tests: register and log in real accounts through the REST edge.

use serde_json::{Value, json};

use super::{TestApp, json};

/// A registered account and its tokens.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh_token: String,
}

/// The password every helper account gets.
pub const PASSWORD: &str = "SecurePass123";

impl TestApp {
    /// Registers `email` with [`PASSWORD`] and returns its tokens.
    pub async fn register(&self, email: &str) -> Account {
        let body =
            json!({"email": email, "password": PASSWORD, "firstName": "Jane", "lastName": "Smith"});
        let response = self.post_json("/auth/register", &body, None).await;
        assert_eq!(response.status().as_u16(), 201, "register {email}");
        let body = json(response).await;
        Account {
            id: body["user"]["id"].as_i64().expect("user.id"),
            email: email.to_owned(),
            password: PASSWORD.to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
            refresh_token: body["refreshToken"]
                .as_str()
                .expect("refreshToken")
                .to_owned(),
        }
    }

    /// Registers an account and makes it an admin in the database; returns a fresh login.
    pub async fn register_admin(&self, email: &str) -> Account {
        let account = self.register(email).await;
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
            .bind(account.id)
            .execute(&self.db)
            .await
            .unwrap();
        self.login(email, PASSWORD).await
    }

    /// POST /auth/refresh with `token`; the raw response.
    pub async fn refresh(&self, token: &str) -> reqwest::Response {
        self.post_json("/auth/refresh", &json!({ "refreshToken": token }), None)
            .await
    }

    /// Asserts that `token` no longer refreshes: 401 INVALID_REFRESH_TOKEN.
    pub async fn assert_refresh_refused(&self, token: &str) {
        super::assert_error(self.refresh(token).await, 401, "INVALID_REFRESH_TOKEN").await;
    }

    /// POST /auth/login with email and password; the raw response.
    pub async fn login_raw(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/auth/login",
            &json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    /// Logs in (expects 200).
    pub async fn login(&self, email: &str, password: &str) -> Account {
        let response = self.login_raw(email, password).await;
        assert_eq!(response.status().as_u16(), 200, "login {email}");
        let body: Value = json(response).await;
        Account {
            id: body["user"]["id"].as_i64().expect("user.id"),
            email: email.to_owned(),
            password: password.to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
            refresh_token: body["refreshToken"].as_str().unwrap().to_owned(),
        }
    }
}

/// The reset token in a password reset mail.
pub fn reset_token_in(mail: &str) -> String {
    let start =
        mail.find("reset-password?token=").expect("a reset link") + "reset-password?token=".len();
    mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// An application with rate limiting on, on Redis key prefix `prefix` (a fresh one when
/// `None`), so two of them share limits and the deny-list as two instances of one deployment
/// do (each on its own database; [`TestApp::spawn_sibling`] shares the database too).
pub async fn spawn_app_with_rate_limits(prefix: Option<&str>, extra: &[&str]) -> TestApp {
    let (db_name, fresh_prefix) = super::fresh_names();
    let prefix = prefix.map(str::to_owned).unwrap_or(fresh_prefix);
    let mut args = vec!["--rate-limit-enabled", "true"];
    args.extend_from_slice(extra);
    let settings = super::test_settings(&super::postgres_base(), &db_name, &prefix, &args);
    let clock = ecom::clock::Clock::fixed(chrono::Utc::now());
    super::spawn_with_settings(
        settings,
        db_name,
        super::postgres_base(),
        clock,
        ecom::server::Mode::all(),
    )
    .await
}
