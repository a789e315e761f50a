//! The envelope of every list the API returns.

use serde::{Deserialize, Serialize};

/// A list of items: `{"items": [...]}`. An object rather than a bare array so that
/// paging fields can be added without breaking clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct List<T> {
    /// The items, in the order the endpoint documents.
    pub items: Vec<T>,
}

impl<T> From<Vec<T>> for List<T> {
    fn from(items: Vec<T>) -> Self {
        List { items }
    }
}
