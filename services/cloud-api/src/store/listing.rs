//! The order of every paginated list, shared by both implementations: each listed record names
//! its own keyset cursor (sort key and id), so Postgres and the in-memory store page the same way.

use crate::domain::*;

/// A record of a keyset-paginated list: the `(key, id)` it sorts by, as its cursor.
pub trait Listed {
    fn cursor(&self) -> Cursor;
}

/// Lists ordered by creation time.
fn created(at: chrono::DateTime<chrono::Utc>, id: &str) -> Cursor {
    Cursor {
        key: time_key(at),
        id: id.to_owned(),
    }
}

/// Lists ordered by a text column (byte order).
fn text(key: &str, id: &str) -> Cursor {
    Cursor {
        key: key.to_owned(),
        id: id.to_owned(),
    }
}

impl Listed for User {
    fn cursor(&self) -> Cursor {
        created(self.created_at, self.id.as_str())
    }
}

impl Listed for Invite {
    fn cursor(&self) -> Cursor {
        created(self.created_at, self.id.as_str())
    }
}

impl Listed for Instance {
    fn cursor(&self) -> Cursor {
        created(self.created_at, self.id.as_str())
    }
}

impl Listed for Provider {
    fn cursor(&self) -> Cursor {
        created(self.created_at, self.id.as_str())
    }
}

impl Listed for Member {
    fn cursor(&self) -> Cursor {
        created(self.membership.created_at, self.membership.user_id.as_str())
    }
}

impl Listed for Project {
    fn cursor(&self) -> Cursor {
        text(&self.name, self.id.as_str())
    }
}

impl Listed for Conversation {
    fn cursor(&self) -> Cursor {
        text(&self.title, self.id.as_str())
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
pub fn memory_cursor_time(c: &Cursor) -> Option<chrono::DateTime<chrono::Utc>> {
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
