//! List envelopes and pagination.
//!
//! Every list takes `page` (from 1) and `page_size` (1–100, default 10) and answers
//! its items beside a `pagination` block: `page`, `page_size`, `total_pages`,
//! `total_items`, `has_next`, `has_prev`. Asking for more than 100 per page is an
//! error rather than a silent cap, so a client never believes it saw everything.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 10;
/// Largest page size.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A list of items: `{"items": [...]}`.
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

/// `page` and `page_size` as a client sends them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct PageParams {
    /// Page number, from 1 (default 1).
    pub page: Option<u32>,
    /// Items per page, 1–100 (default 10).
    pub page_size: Option<u32>,
}

/// A checked page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// From 1.
    pub page: u32,
    /// 1–100.
    pub size: u32,
}

impl PageParams {
    /// Checks the numbers.
    pub fn check(self) -> Result<Page, DomainError> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if page == 0 {
            return Err(DomainError::invalid("page", "pages start at 1"));
        }
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(DomainError::invalid(
                "page_size",
                format!("must be from 1 to {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Page { page, size })
    }
}

impl Page {
    /// Rows to skip.
    pub fn offset(self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.size)
    }

    /// Rows to take.
    pub fn limit(self) -> u64 {
        u64::from(self.size)
    }

    /// The pagination block for a list of `total` items.
    pub fn of(self, total: u64) -> Pagination {
        let total_pages = total.div_ceil(u64::from(self.size));
        Pagination {
            page: self.page,
            page_size: self.size,
            total_pages,
            total_items: total,
            has_next: u64::from(self.page) < total_pages,
            has_prev: self.page > 1,
        }
    }
}

/// The `pagination` block of a list answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pagination {
    /// This page, from 1.
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
    /// Pages in all.
    pub total_pages: u64,
    /// Items in all.
    pub total_items: u64,
    /// A later page exists.
    pub has_next: bool,
    /// An earlier page exists.
    pub has_prev: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let p = PageParams {
            page: Some(1),
            page_size: None,
        }
        .check()
        .unwrap();
        assert_eq!(
            p.of(47),
            Pagination {
                page: 1,
                page_size: 10,
                total_pages: 5,
                total_items: 47,
                has_next: true,
                has_prev: false
            }
        );
        let p = PageParams {
            page: Some(5),
            page_size: Some(10),
        }
        .check()
        .unwrap();
        assert_eq!(
            (p.offset(), p.of(47).has_next, p.of(47).has_prev),
            (40, false, true)
        );
        assert_eq!(p.of(0).total_pages, 0);
        assert!(
            PageParams {
                page: Some(0),
                page_size: None
            }
            .check()
            .is_err()
        );
        assert!(
            PageParams {
                page: None,
                page_size: Some(101)
            }
            .check()
            .is_err()
        );
    }
}
