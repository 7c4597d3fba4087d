//! The list envelope shared by every paginated route: `{"items": [...], "next_cursor": ...}`.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Cursor, ValidationError};
use crate::store::{Page, PageRequest};

#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> From<Page<T>> for ListResponse<T> {
    fn from(page: Page<T>) -> Self {
        Self {
            items: page.items,
            next_cursor: page.next_cursor.map(|c| c.encode()),
        }
    }
}

/// A page size above the maximum is refused, never silently cut.
pub fn page_request(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<PageRequest, ValidationError> {
    let limit = limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
    if limit == 0 || limit > PageRequest::MAX_LIMIT {
        return Err(ValidationError::new(
            "limit",
            format!("must be between 1 and {}", PageRequest::MAX_LIMIT),
        ));
    }
    Ok(PageRequest {
        limit,
        after: cursor.map(Cursor::decode).transpose()?,
    })
}
