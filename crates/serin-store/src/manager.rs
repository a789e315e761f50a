//! Storage of the release manager: users and sessions,
//! environments, approvals, and the release queries it adds.
//!
//! Users and sessions are rows; a session's token is stored only as its
//! SHA-256 (the server makes the token and hashes it). Environments are stored
//! whole as JSON per product, and a product with none stored has
//! `serin_core::release::environment::default_environments`. Approvals are append-only:
//! a change of mind is a new row, and the tally reads each person's latest.

use serde_json::json;
use serin_core::auth::Role;
use serin_core::event::{EventType, NewEvent};
use serin_core::release::environment::{Approval, Decision, Environment, EnvironmentSpec};
use serin_core::user::User;
use serin_core::{Release, ReleaseStatus, Timestamp};

use crate::canary::{Paged, stamp};
use crate::{Result, Store};

/// A user with the hash of their password, for logging in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// Their password's Argon2 hash (PHC string).
    pub password_hash: String,
}

/// A change of a user, as the store applies it (the password already hashed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    /// New name.
    pub name: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Disable (true) or enable (false).
    pub disabled: Option<bool>,
    /// New password hash.
    pub password_hash: Option<String>,
}

impl UserChange {
    /// Whether the change ends the user's sessions (they must log in again).
    pub fn ends_sessions(&self) -> bool {
        self.role.is_some() || self.disabled == Some(true) || self.password_hash.is_some()
    }
}

/// A new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// `session_<uuid>`.
    pub id: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Whose.
    pub user_id: String,
    /// When it began.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A session that works now, and its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// The session's id.
    pub id: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Its user.
    pub user: User,
}

/// Which releases to list across products.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReleaseFilter {
    /// Only this product's.
    pub product: Option<String>,
    /// Only in this status.
    pub status: Option<ReleaseStatus>,
}

impl Store {
    /// Stores a new user. `Conflict` when the email is taken.
    pub async fn create_user(&self, c: Credentials, actor: &str) -> Result<User> {
        let u = &c.user;
        let event = stamp(
            NewEvent {
                kind: EventType::UserCreated,
                resource_type: "user",
                resource_id: u.id.clone(),
                deployment_id: None,
                message: format!("User {} ({}) created", u.email, u.role),
                data: json!({"email": u.email, "name": u.name, "role": u.role}),
            },
            actor,
            u.created_at,
        );
        dispatch!(self, b => b.create_user(c, event))
    }

    /// Users by email.
    pub async fn list_users(&self, offset: u64, limit: u64) -> Result<Paged<User>> {
        dispatch!(self, b => b.list_users(offset, limit))
    }

    /// One user by id.
    pub async fn get_user(&self, id: &str) -> Result<User> {
        dispatch!(self, b => b.get_user(id))
    }

    /// A user and their password hash, by (lower-case) email.
    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>> {
        dispatch!(self, b => b.credentials(email))
    }

    /// Changes a user (and ends their sessions when the change asks it), with an event.
    pub async fn update_user(
        &self,
        id: &str,
        change: UserChange,
        actor: &str,
        now: Timestamp,
    ) -> Result<User> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.update_user(id, change, actor, now))
    }

    /// Records a login attempt's outcome: a success resets the failure count and
    /// sets `last_login`; a failure adds one. Returns the failures now counted.
    pub async fn record_login(&self, user_id: &str, ok: bool, now: Timestamp) -> Result<u32> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.record_login(user_id, ok, now))
    }

    /// Starts a session, with a `user_logged_in` event.
    pub async fn create_session(&self, s: NewSession, email: &str) -> Result<()> {
        let event = stamp(
            NewEvent {
                kind: EventType::UserLoggedIn,
                resource_type: "user",
                resource_id: s.user_id.clone(),
                deployment_id: None,
                message: format!("{email} logged in"),
                data: json!({"session_id": s.id, "expires_at": s.expires_at}),
            },
            email,
            s.created_at,
        );
        dispatch!(self, b => b.create_session(s, event))
    }

    /// The session with this token hash, if it works at `now` (not ended, not
    /// expired, its user not disabled).
    pub async fn live_session(&self, hash: &str, now: Timestamp) -> Result<Option<LiveSession>> {
        dispatch!(self, b => b.live_session(hash, now))
    }

    /// Ends a session, with a `user_logged_out` event (nothing if it had ended).
    pub async fn end_session(
        &self,
        session_id: &str,
        user_id: &str,
        email: &str,
        now: Timestamp,
    ) -> Result<()> {
        let now = serin_core::to_micros(now);
        let event = stamp(
            NewEvent {
                kind: EventType::UserLoggedOut,
                resource_type: "user",
                resource_id: user_id.to_string(),
                deployment_id: None,
                message: format!("{email} logged out"),
                data: json!({"session_id": session_id}),
            },
            email,
            now,
        );
        dispatch!(self, b => b.end_session(session_id, event, now))
    }

    /// A product's environments in order (the defaults when none are stored).
    /// `NotFound` for an unknown product.
    pub async fn environments(&self, product: &str) -> Result<Vec<Environment>> {
        dispatch!(self, b => b.environments(product))
    }

    /// Adds (`create`) or changes an environment, in one transaction with its
    /// event; the product's whole list is stored (defaults included) from then on.
    pub async fn change_environment(
        &self,
        product: &str,
        name: &str,
        spec: &EnvironmentSpec,
        create: bool,
        actor: &str,
        now: Timestamp,
    ) -> Result<Environment> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.change_environment(product, name, spec, create, actor, now))
    }

    /// Records an approval or a rejection with its event.
    pub async fn record_approval(&self, a: Approval, release: &Release) -> Result<Approval> {
        let (kind, verb) = match a.decision {
            Decision::Approved => (EventType::ReleaseApproved, "approved"),
            Decision::Rejected => (EventType::ReleaseRejected, "rejected"),
        };
        let event = stamp(
            NewEvent {
                kind,
                resource_type: "release",
                resource_id: a.release_id.to_string(),
                deployment_id: None,
                message: format!(
                    "{} {verb} {}@{} for {}{}",
                    a.actor,
                    release.product_name,
                    release.version,
                    a.environment,
                    a.comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                ),
                data: json!({"approval_id": a.id, "environment": a.environment, "decision": a.decision, "comment": a.comment, "role": a.role}),
            },
            &a.actor,
            a.created_at,
        );
        dispatch!(self, b => b.record_approval(a, event))
    }

    /// A release's approvals and rejections, oldest first; one environment's
    /// when `environment` is given.
    pub async fn approvals(
        &self,
        release_id: i64,
        environment: Option<&str>,
    ) -> Result<Vec<Approval>> {
        dispatch!(self, b => b.approvals(release_id, environment))
    }

    /// Releases of every product, newest first.
    pub async fn list_all_releases(
        &self,
        f: &ReleaseFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Release>> {
        dispatch!(self, b => b.list_all_releases(f, offset, limit))
    }

    /// Deletes a `draft` release (and its signals), with an event; any other
    /// status is refused with `RELEASE_NOT_DRAFT`.
    pub async fn delete_release(&self, id: i64, actor: &str, now: Timestamp) -> Result<Release> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.delete_release(id, actor, now))
    }
}

/// A decision's stored name.
pub(crate) fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Approved => "approved",
        Decision::Rejected => "rejected",
    }
}

/// The event of a user's change.
pub(crate) fn user_updated(old: &User, new: &User, change: &UserChange) -> NewEvent {
    let mut data = serde_json::Map::new();
    if old.name != new.name {
        data.insert("name".into(), json!({"old": old.name, "new": new.name}));
    }
    if old.role != new.role {
        data.insert("role".into(), json!({"old": old.role, "new": new.role}));
    }
    if old.disabled_at.is_some() != new.disabled_at.is_some() {
        data.insert(
            "disabled".into(),
            json!({"old": old.disabled_at.is_some(), "new": new.disabled_at.is_some()}),
        );
    }
    if change.password_hash.is_some() {
        data.insert("password".into(), json!("changed"));
    }
    if change.ends_sessions() {
        data.insert("sessions_ended".into(), json!(true));
    }
    let keys: Vec<String> = data.keys().cloned().collect();
    NewEvent {
        kind: EventType::UserUpdated,
        resource_type: "user",
        resource_id: new.id.clone(),
        deployment_id: None,
        message: format!("User {} changed: {}", new.email, keys.join(", ")),
        data: serde_json::Value::Object(data),
    }
}

/// The event of a change of a product's environments.
pub(crate) fn environment_changed(e: &Environment, create: bool) -> NewEvent {
    NewEvent {
        kind: EventType::EnvironmentChanged,
        resource_type: "environment",
        resource_id: format!("{}/{}", e.product, e.name),
        deployment_id: None,
        message: format!(
            "Environment {} of {} {}",
            e.name,
            e.product,
            if create { "added" } else { "changed" }
        ),
        data: json!({"environment": e}),
    }
}

/// The event of a draft's deletion.
pub(crate) fn release_deleted(r: &Release) -> NewEvent {
    NewEvent {
        kind: EventType::ReleaseDeleted,
        resource_type: "release",
        resource_id: r.id.to_string(),
        deployment_id: None,
        message: format!("Draft release {}@{} deleted", r.product_name, r.version),
        data: json!({"product": r.product_name, "version": r.version, "description": r.description}),
    }
}

/// The refusal to delete a draft that some deployment deployed.
pub(crate) fn was_deployed(r: &Release) -> crate::StoreError {
    crate::StoreError::Domain(serin_core::DomainError::Refused {
        code: "RELEASE_DEPLOYED",
        message: format!(
            "release {}@{} has been deployed to an environment; its history stays (cancel it instead)",
            r.product_name, r.version
        ),
        kind: serin_core::error::Kind::Conflict,
    })
}

/// The refusal to delete a release that isn't a draft.
pub(crate) fn not_a_draft(r: &Release) -> crate::StoreError {
    crate::StoreError::Domain(serin_core::DomainError::Refused {
        code: "RELEASE_NOT_DRAFT",
        message: format!(
            "release {}@{} is {}; only drafts can be deleted (cancel it instead)",
            r.product_name, r.version, r.status
        ),
        kind: serin_core::error::Kind::Conflict,
    })
}
