//! People: log in and out, who am I, and users managed by admins.

use serin_app::App;

use crate::state::Logins;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serin_core::auth::Role;
use serin_core::page::{PageParams, Pagination};
use serin_core::user::{NewUser, User, UserPatch, normalize_email};
use serin_store::manager::{Credentials, NewSession, UserChange};

use crate::auth::{Principal, SESSION_PREFIX, hash_key, random_token};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The user and session routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/users/me", get(me))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}", get(show_user).patch(update_user))
}

/// Credentials.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The user's email.
    pub email: String,
    /// Their password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    /// Send it as `Authorization: Bearer <token>`. Shown once; Serin keeps its hash.
    pub token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// When it stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Who logged in.
    pub user: User,
}

/// Log in with an email and password; returns a session token.
///
/// Five wrong passwords in a row for an email make each next attempt wait
/// (1 s, doubling, at most 15 min): until then the answer is 429 with
/// `Retry-After`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    security(()),
    responses(
        (status = 200, body = Session),
        (status = 401, description = "`INVALID_CREDENTIALS`", body = ErrorBody),
        (status = 429, description = "`LOGIN_THROTTLED`", body = ErrorBody),
        (status = 503, description = "`LOGIN_BUSY`", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<App>,
    State(logins): State<Logins>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<Login>,
) -> Response {
    let client = crate::peer::client_address(
        peer.map(|p| p.0.0.ip()),
        &headers,
        &state.config.trusted_proxies,
    );
    let now = state.now().timestamp_micros() as f64 / 1e6;
    if logins.failures.exhausted(&client, now) {
        return too_many(
            &state,
            "too many failed logins from this address; retry in a minute",
            60,
        );
    }
    match try_login(&state, &logins, &client, body).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => {
            if e.status() == StatusCode::UNAUTHORIZED {
                // Counted against the address; nothing when the limit is off.
                let _ = logins.failures.check(&client, now);
            }
            e
        }
    }
}

/// A 429 with `Retry-After`.
fn too_many(state: &App, message: &str, secs: u64) -> Response {
    state.telemetry.login("throttled");
    let mut resp = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "LOGIN_THROTTLED", message)
        .details(json!({"retry_after_seconds": secs}))
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

/// A login attempt. Wrong passwords slow down further attempts for this email
/// from this address only: a guesser elsewhere can't lock the owner out.
async fn try_login(
    state: &App,
    logins: &Logins,
    client: &str,
    body: Login,
) -> Result<Session, Response> {
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
            "the email or password is wrong",
        )
    };
    let Ok(email) = normalize_email(&body.email) else {
        state.telemetry.login("unknown_user");
        return Err(bad().into_response());
    };
    if body.password.len() > serin_core::user::MAX_PASSWORD_LEN {
        state.telemetry.login("bad_password");
        return Err(bad().into_response());
    }
    let throttled = format!("{client} {email}");
    let began = logins.throttle.begin(&throttled, state.now()).await;
    if let Err(wait) = began.map_err(err)? {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        return Err(too_many(
            state,
            &format!("too many wrong passwords for this email; retry in {secs}s"),
            secs,
        ));
    }
    let found = state.store.credentials(&email).await.map_err(err)?;
    let ok = logins
        .passwords
        .verify(
            body.password,
            found.as_ref().map(|c| c.password_hash.clone()),
        )
        .await
        .map_err(IntoResponse::into_response)?;
    let now = state.now();
    let user = match found {
        Some(c) if ok && c.user.disabled_at.is_none() => c.user,
        Some(_) if ok => {
            state.telemetry.login("disabled");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "USER_DISABLED",
                "this account is disabled; ask an admin",
            )
            .into_response());
        }
        Some(c) => {
            state.telemetry.login("bad_password");
            // Written after the answer: a known email must not answer slower
            // than an unknown one.
            let store = state.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.record_login(&c.user.id, false, now).await {
                    tracing::warn!(error = %e, "cannot count a failed login");
                }
            });
            return Err(bad().into_response());
        }
        None => {
            state.telemetry.login("unknown_user");
            return Err(bad().into_response());
        }
    };
    if let Err(e) = logins.throttle.succeeded(&throttled).await {
        // The failures stay counted: the next attempt from here waits
        // longer than it should, and no one gets in who shouldn't.
        tracing::warn!(error = %e, "cannot clear the login throttle");
    }
    let token = random_token(SESSION_PREFIX).map_err(IntoResponse::into_response)?;
    let ttl =
        chrono::Duration::from_std(state.config.session_ttl).unwrap_or(chrono::Duration::hours(12));
    let session = NewSession {
        id: format!("session_{}", uuid::Uuid::new_v4()),
        token_hash: hash_key(&token),
        user_id: user.id.clone(),
        created_at: now,
        expires_at: now + ttl,
    };
    let expires_at = session.expires_at;
    state
        .store
        .create_session(session, &user.email)
        .await
        .map_err(err)?;
    state
        .store
        .record_login(&user.id, true, now)
        .await
        .map_err(err)?;
    state.telemetry.login("success");
    Ok(Session {
        token,
        token_type: "Bearer",
        expires_at,
        user: User {
            last_login: Some(now),
            failed_logins: 0,
            ..user
        },
    })
}

fn err(e: serin_store::StoreError) -> Response {
    ApiError::from(e).into_response()
}

/// End the session whose token was sent.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "The session has ended"),
        (status = 400, description = "`NOT_A_SESSION`: an API key was sent", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<App>,
    State(logins): State<Logins>,
    Extension(who): Extension<Principal>,
) -> ApiResult<StatusCode> {
    let Some(s) = &who.session else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "NOT_A_SESSION",
            "this is an API key, not a session; revoke keys with DELETE /api/v1/api-keys/{id}",
        ));
    };
    state
        .store
        .end_session(&s.id, &s.user_id, &who.name, state.now())
        .await?;
    logins.auth.forget_all();
    Ok(StatusCode::NO_CONTENT)
}

/// Who is calling.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// `user` or `api_key`.
    pub kind: &'static str,
    /// The email or the key's name (the actor in the audit log).
    pub name: String,
    /// The role.
    pub role: Role,
    /// The user, for a session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// When the session ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The caller's profile: the user of a session, or the API key.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn me(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Me>> {
    let user = match &who.session {
        Some(s) => Some(state.store.get_user(&s.user_id).await?),
        None => None,
    };
    Ok(Json(Me {
        kind: if user.is_some() { "user" } else { "api_key" },
        name: who.name,
        role: who.role,
        session_expires_at: who.session.map(|s| s.expires_at),
        user,
    }))
}

/// A page of users.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    /// The users on this page, by email.
    pub items: Vec<User>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// Create a user (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "auth", request_body = NewUser,
    responses(
        (status = 201, body = User),
        (status = 400, body = ErrorBody),
        (status = 409, description = "`USER_EXISTS`", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create_user(
    State(state): State<App>,
    State(logins): State<Logins>,
    Extension(who): Extension<Principal>,
    ApiJson(new): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let email = new.validate()?;
    if state.store.credentials(&email).await?.is_some() {
        return Err(serin_store::StoreError::Conflict {
            entity: serin_store::Entity::User,
            key: email,
        }
        .into());
    }
    let password_hash = logins.passwords.hash(new.password).await?;
    let user = User {
        id: format!("user_{}", uuid::Uuid::new_v4()),
        email,
        name: new.name.trim().to_string(),
        role: new.role,
        created_at: state.now(),
        last_login: None,
        disabled_at: None,
        failed_logins: 0,
    };
    let user = state
        .store
        .create_user(
            Credentials {
                user,
                password_hash,
            },
            &who.name,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Users, by email (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "auth", params(PageParams),
    responses((status = 200, body = UserList)))]
#[tracing::instrument(skip_all)]
pub async fn list_users(
    State(state): State<App>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<UserList>> {
    let page = p.check()?;
    let found = state.store.list_users(page.offset(), page.limit()).await?;
    Ok(Json(UserList {
        count: found.items.len(),
        pagination: page.of(found.total),
        items: found.items,
    }))
}

/// One user (admins).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "auth",
    params(("id" = String, Path, description = "the user's id")),
    responses((status = 200, body = User), (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn show_user(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<User>> {
    Ok(Json(state.store.get_user(&id).await?))
}

/// Change a user's name, role, password or access (admins). A role or password
/// change, or disabling, ends the user's sessions.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "auth", request_body = UserPatch,
    params(("id" = String, Path, description = "the user's id")),
    responses(
        (status = 200, body = User),
        (status = 400, body = ErrorBody),
        (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, patch))]
pub async fn update_user(
    State(state): State<App>,
    State(logins): State<Logins>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<Json<User>> {
    patch.validate()?;
    let password_hash = match patch.password {
        Some(p) => Some(logins.passwords.hash(p).await?),
        None => None,
    };
    let change = UserChange {
        name: patch.name.map(|n| n.trim().to_string()),
        role: patch.role,
        disabled: patch.disabled,
        password_hash,
    };
    let ends = change.ends_sessions();
    let user = state
        .store
        .update_user(&id, change, &who.name, state.now())
        .await?;
    if ends {
        logins.auth.forget_all();
    }
    Ok(Json(user))
}
