//! API keys (admins only): create (the key is shown once), list, revoke.

use serin_app::App;

use crate::auth::Authenticator;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serin_core::auth::Role;
use serin_core::page::{PageParams, Pagination};
use serin_store::canary::ApiKeyRecord;

use crate::auth::{Principal, generate_key, hash_key};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The key routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/api-keys", get(list).post(create))
        .route("/api/v1/api-keys/{id}", delete(revoke))
}

/// A key to make.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// A name for people; it is the actor in the audit log.
    pub name: String,
    /// `admin`, `engineer` or `viewer`.
    pub role: Role,
}

/// A key as listed (never the key itself).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    /// `key_<uuid>`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its first characters.
    pub prefix: String,
    /// When it was made.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Who made it.
    pub created_by: String,
    /// When it was revoked.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<ApiKeyRecord> for ApiKeyInfo {
    fn from(k: ApiKeyRecord) -> Self {
        ApiKeyInfo {
            id: k.id,
            name: k.name,
            role: k.role,
            prefix: k.prefix,
            created_at: k.created_at,
            created_by: k.created_by,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key: the only time `key` is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    /// The key's record.
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The key. Store it now: Serin keeps only its hash.
    pub key: String,
}

/// What lists show to recognise a key: the first characters of a generated key
/// (`srn_` and 4 of its 48 random hex digits, nothing an attacker can use), and
/// nothing of a key chosen by a person (`SERIN_ADMIN_TOKEN`), whose first
/// characters may be a real part of the secret.
fn display_prefix(key: &str) -> String {
    let generated = key.len() == 52
        && key.starts_with("srn_")
        && key[4..].bytes().all(|b| b.is_ascii_hexdigit());
    if generated {
        key[..8].to_string()
    } else {
        "(chosen)".to_string()
    }
}

/// The actors Serin writes into the audit log itself.
const RESERVED_ACTORS: &[&str] = &["system", "controller", "health-monitor", "serin"];

/// Makes a key record and the key.
pub async fn make_key(
    state: &App,
    name: &str,
    role: Role,
    actor: &str,
    key: Option<String>,
) -> ApiResult<(ApiKeyRecord, String)> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("name", "must be 1 to 100 characters"));
    }
    serin_core::release::product::validate_text("name", name)?;
    // The name is the key's actor in the audit log: it may not pass for a
    // person (whose actor is their email) or for Serin itself, and the store
    // keeps it unique for good.
    if name.contains('@') || RESERVED_ACTORS.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return Err(ApiError::invalid(
            "name",
            "a key's name may not contain `@` (people's emails are actors) or be one of Serin's own actors (system, controller, health-monitor, serin)",
        ));
    }
    let key = match key {
        Some(k) => k,
        None => generate_key()?,
    };
    let record = ApiKeyRecord {
        id: format!("key_{}", uuid::Uuid::new_v4()),
        name: name.to_string(),
        role,
        key_hash: hash_key(&key),
        prefix: display_prefix(&key),
        created_at: state.now(),
        created_by: actor.to_string(),
        revoked_at: None,
    };
    let record = state.store.create_api_key(record, actor).await?;
    Ok((record, key))
}

/// Create a key (admin). The answer holds the key; it is never shown again.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "auth", request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "`API_KEY_EXISTS`: the name is taken (names are unique for good, without case)", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(name = %new.name, role = %new.role))]
pub async fn create(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiJson(new): ApiJson<NewApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let (record, key) = make_key(&state, &new.name, new.role, &who.name, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            info: record.into(),
            key,
        }),
    ))
}

/// A page of API keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyList {
    /// Newest first.
    pub api_keys: Vec<ApiKeyInfo>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// API keys, newest first (admin).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "auth", params(PageParams),
    responses((status = 200, body = ApiKeyList), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<App>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<ApiKeyList>> {
    let page = p.check()?;
    let found = state
        .store
        .list_api_keys(page.offset(), page.limit())
        .await?;
    let keys: Vec<ApiKeyInfo> = found.items.into_iter().map(ApiKeyInfo::from).collect();
    Ok(Json(ApiKeyList {
        count: keys.len(),
        pagination: page.of(found.total),
        api_keys: keys,
    }))
}

/// Revoke a key (admin); it stops working at once on this server and within
/// half a second on other replicas.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "auth",
    params(("id" = String, Path, description = "the key's id")),
    responses((status = 200, body = ApiKeyInfo), (status = 404, description = "`API_KEY_NOT_FOUND`", body = ErrorBody)))]
pub async fn revoke(
    State(state): State<App>,
    State(auth): State<Authenticator>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ApiKeyInfo>> {
    let k = state
        .store
        .revoke_api_key(&id, &who.name, state.now())
        .await?;
    auth.forget_all();
    Ok(Json(k.into()))
}
