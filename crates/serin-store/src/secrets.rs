//! Secrets, sealed by the server before they reach the store: the store keeps
//! bytes it can't read, their names and who set them. Setting and deleting
//! one are audit events that name the secret, never its value.

use serin_core::Timestamp;
use serin_core::event::{Event, EventType, NewEvent};
use serin_core::secret::SecretInfo;

use crate::canary::stamp;
use crate::{Result, Store};

pub(crate) fn event(kind: EventType, name: &str, actor: &str, now: Timestamp) -> Event {
    let verb = if kind == EventType::SecretDeleted {
        "deleted"
    } else {
        "set"
    };
    stamp(
        NewEvent {
            kind,
            resource_type: "secret",
            resource_id: name.to_string(),
            deployment_id: None,
            message: format!("secret {name} {verb}"),
            data: serde_json::json!({"name": name}),
        },
        actor,
        now,
    )
}

impl Store {
    /// Stores (or replaces) a sealed secret, with a `secret_set` event.
    pub async fn put_secret(
        &self,
        name: &str,
        sealed: Vec<u8>,
        actor: &str,
        now: Timestamp,
    ) -> Result<SecretInfo> {
        dispatch!(self, b => b.put_secret(name, sealed, actor, now))
    }

    /// Every secret's name and history, by name; never a value.
    pub async fn list_secrets(&self) -> Result<Vec<SecretInfo>> {
        dispatch!(self, b => b.list_secrets())
    }

    /// A secret's sealed bytes, if it exists.
    pub async fn sealed_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        dispatch!(self, b => b.sealed_secret(name))
    }

    /// Deletes a secret, with a `secret_deleted` event; `NotFound` if there is none.
    pub async fn delete_secret(&self, name: &str, actor: &str, now: Timestamp) -> Result<()> {
        dispatch!(self, b => b.delete_secret(name, actor, now))
    }
}
