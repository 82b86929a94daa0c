//! The order of every paginated list, shared by both implementations: each listed record names
//! its own keyset cursor (sort key and id), so Postgres and the in-memory store page the same way.

use crate::domain::*;

/// A record of a keyset-paginated list: the `(key, id)` it sorts by, as its cursor.
pub trait Listed {
    fn cursor(&self) -> Cursor;
}

/// Records listed by creation time (then id): the key is [`time_key`] of `created_at`.
macro_rules! listed_by_creation {
    ($($record:ty),*) => {$(
        impl Listed for $record {
            fn cursor(&self) -> Cursor {
                Cursor {
                    key: time_key(self.created_at),
                    id: self.id.0.clone(),
                }
            }
        }
    )*};
}

listed_by_creation!(User, Invite, Instance, Provider);

impl Listed for Member {
    fn cursor(&self) -> Cursor {
        Cursor {
            key: time_key(self.membership.created_at),
            id: self.membership.user_id.0.clone(),
        }
    }
}

/// Projects list by name, conversations by title (byte order, then id).
impl Listed for Project {
    fn cursor(&self) -> Cursor {
        Cursor {
            key: self.name.clone(),
            id: self.id.0.clone(),
        }
    }
}

impl Listed for Conversation {
    fn cursor(&self) -> Cursor {
        Cursor {
            key: self.title.clone(),
            id: self.id.0.clone(),
        }
    }
}

impl Listed for Memory {
    /// Newest first: the key inverts the time so ascending key order is descending time.
    fn cursor(&self) -> Cursor {
        Cursor {
            key: format!("{:020}", i64::MAX - self.updated_at.timestamp_micros()),
            id: self.id.0.clone(),
        }
    }
}

/// The `updated_at` a memory cursor stands for (the inverse of [`Memory::cursor`]).
pub fn memory_cursor_time(c: &Cursor) -> Option<Timestamp> {
    c.key
        .parse::<i64>()
        .ok()
        .and_then(|k| i64::MAX.checked_sub(k))
        .and_then(chrono::DateTime::from_timestamp_micros)
}

/// Transcript pages: the cursor key is the 1-based position of the last message returned (0,
/// the start, without a cursor or with one that is not a position).
pub fn message_position_after(page: &PageReq) -> i64 {
    page.after
        .as_ref()
        .and_then(|c| c.key.parse().ok())
        .unwrap_or(0)
}

/// Cuts messages fetched with their positions (`limit + 1` of them) into a page.
pub fn message_page(fetched: Vec<(i64, Message)>, limit: usize) -> Page<Message> {
    let p = Page::from_fetched(fetched, limit, |(pos, _)| Cursor {
        key: pos.to_string(),
        id: String::new(),
    });
    Page {
        items: p.items.into_iter().map(|(_, m)| m).collect(),
        next: p.next,
    }
}
