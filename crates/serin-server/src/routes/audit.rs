//! The audit log: every change anywhere, who made it, what changed.
//! Read-only: no route edits or deletes an entry.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serin_app::App;
use serin_core::event::Event;
use serin_core::page::{PageParams, Pagination};
use serin_store::canary::EventFilter;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// The audit route.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/audit-logs", get(list))
}

/// Filters of the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this kind of resource: `deployment`, `product`, `release`, `worker`, `api_key`.
    pub resource_type: Option<String>,
    /// Only this resource.
    pub resource_id: Option<String>,
    /// Only this actor's changes.
    pub actor: Option<String>,
    /// Only this action (event type), e.g. `percentage_updated`.
    pub action: Option<String>,
    /// Only at or after this RFC 3339 instant.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only before this RFC 3339 instant.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Items per page, 1–100 (default 10).
    pub page_size: Option<u32>,
}

/// One audit entry: who, what, on which resource, the changes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// The event's id.
    pub id: String,
    /// What was done (the event type).
    pub action: String,
    /// The kind of resource.
    pub resource_type: String,
    /// The resource.
    pub resource_id: String,
    /// Who did it.
    pub actor: String,
    /// What changed.
    #[schema(value_type = Object)]
    pub changes: Value,
    /// One sentence for people.
    pub message: String,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Event> for AuditEntry {
    fn from(e: Event) -> Self {
        AuditEntry {
            id: e.id,
            action: e.kind.as_str().to_string(),
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            actor: e.actor,
            changes: e.data,
            message: e.message,
            created_at: e.timestamp,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub audit_logs: Vec<AuditEntry>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit-logs", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<App>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> ApiResult<Json<AuditList>> {
    let page = PageParams {
        page: p.page,
        page_size: p.page_size,
    }
    .check()?;
    let filter = EventFilter {
        deployment_id: None,
        resource_type: p.resource_type,
        resource_id: p.resource_id,
        actor: p.actor,
        action: p.action,
        since: p.since,
        until: p.until,
    };
    let found = state
        .store
        .list_events(&filter, page.offset(), page.limit())
        .await?;
    let entries: Vec<AuditEntry> = found.items.into_iter().map(AuditEntry::from).collect();
    Ok(Json(AuditList {
        count: entries.len(),
        pagination: page.of(found.total),
        audit_logs: entries,
    }))
}
