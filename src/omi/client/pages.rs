//! Omi's offset pagination as an async stream. It ends on a short or empty page; a page identical to
//! the one before means the server ignores `offset` (Omi's `start` bug, #3066, was one such case), which
//! ends the stream with an error instead of looping forever; any error is yielded, never swallowed, so
//! a caller can tell "no more items" from "could not read the rest".

use futures_util::{Stream, StreamExt};
use std::future::Future;

use super::OmiError;
use super::types::{Conversation, OmiActionItem, OmiMemory};

/// Items that identify themselves, so a repeated page can be recognised.
pub trait Paginated {
    fn page_key(&self) -> &str;
}

impl Paginated for OmiMemory {
    fn page_key(&self) -> &str {
        &self.id
    }
}

impl Paginated for Conversation {
    fn page_key(&self) -> &str {
        &self.id
    }
}

impl Paginated for OmiActionItem {
    fn page_key(&self) -> &str {
        &self.id
    }
}

/// One page and where it started.
#[derive(Debug, Clone)]
pub struct PageFetch<T> {
    pub offset: u32,
    pub items: Vec<T>,
    /// The offset of the page after this one (where to resume).
    pub next_offset: u32,
}

struct State<F> {
    fetch: F,
    offset: u32,
    previous: Option<Vec<String>>,
    done: bool,
}

/// Pages from `start`, `limit` items each, until the end or an error.
pub fn paginate<T, F, Fut>(
    start: u32,
    limit: u32,
    fetch: F,
) -> impl Stream<Item = Result<PageFetch<T>, OmiError>>
where
    T: Paginated,
    F: FnMut(u32, u32) -> Fut,
    Fut: Future<Output = Result<Vec<T>, OmiError>>,
{
    let state = State {
        fetch,
        offset: start,
        previous: None,
        done: false,
    };
    futures_util::stream::unfold(state, move |mut state| async move {
        if state.done {
            return None;
        }
        let offset = state.offset;
        let items = match (state.fetch)(offset, limit).await {
            Ok(items) => items,
            Err(error) => {
                state.done = true;
                return Some((Err(error), state));
            }
        };
        if items.is_empty() {
            return None;
        }
        let keys: Vec<String> = items.iter().map(|i| i.page_key().to_owned()).collect();
        if state.previous.as_ref() == Some(&keys) {
            state.done = true;
            return Some((Err(OmiError::PageRepeated { offset }), state));
        }
        let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
        state.done = count < limit;
        state.offset = offset.saturating_add(count);
        state.previous = Some(keys);
        let page = PageFetch {
            offset,
            items,
            next_offset: state.offset,
        };
        Some((Ok(page), state))
    })
}

/// The items of `paginate`, one by one (an error ends the stream after being yielded).
pub fn items<T, F, Fut>(start: u32, limit: u32, fetch: F) -> impl Stream<Item = Result<T, OmiError>>
where
    T: Paginated,
    F: FnMut(u32, u32) -> Fut,
    Fut: Future<Output = Result<Vec<T>, OmiError>>,
{
    paginate(start, limit, fetch).flat_map(|page| {
        let items: Vec<Result<T, OmiError>> = match page {
            Ok(page) => page.items.into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        };
        futures_util::stream::iter(items)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memories(ids: std::ops::Range<u32>) -> Vec<OmiMemory> {
        ids.map(|i| OmiMemory {
            id: i.to_string(),
            ..OmiMemory::default()
        })
        .collect()
    }

    async fn collect<S: Stream<Item = Result<OmiMemory, OmiError>>>(
        s: S,
    ) -> (Vec<String>, Option<OmiError>) {
        let results: Vec<_> = s.collect().await;
        let mut ids = Vec::new();
        let mut error = None;
        for r in results {
            match r {
                Ok(m) => ids.push(m.id),
                Err(e) => error = Some(e),
            }
        }
        (ids, error)
    }

    #[tokio::test]
    async fn ends_on_a_short_page_and_on_an_empty_one() {
        let (ids, error) = collect(items(0, 10, |offset, limit| async move {
            Ok(memories(offset..(offset + limit).min(25)))
        }))
        .await;
        assert_eq!(ids.len(), 25);
        assert!(error.is_none());
        let (ids, error) = collect(items(0, 5, |offset, limit| async move {
            Ok(memories(offset..(offset + limit).min(10)))
        }))
        .await;
        assert_eq!(ids.len(), 10, "an exact multiple ends on the empty page");
        assert!(error.is_none());
    }

    #[tokio::test]
    async fn a_server_that_ignores_the_offset_ends_with_an_error() {
        let (ids, error) = collect(items(0, 10, |_, _| async { Ok(memories(0..10)) })).await;
        assert_eq!(ids.len(), 10);
        assert!(
            matches!(error, Some(OmiError::PageRepeated { offset: 10 })),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn an_error_mid_stream_is_yielded_not_swallowed() {
        let (ids, error) = collect(items(0, 10, |offset, _| async move {
            if offset >= 20 {
                Err(OmiError::Server {
                    status: 500,
                    detail: "boom".into(),
                })
            } else {
                Ok(memories(offset..offset + 10))
            }
        }))
        .await;
        assert_eq!(ids.len(), 20);
        assert!(matches!(error, Some(OmiError::Server { status: 500, .. })));
    }
}
