//! The in-memory people index: answers the people search (text words, status filters, sort,
//! page and exact total) in milliseconds at a million people, where SQL `LIKE` scans take
//! hundreds. The store stays the source of truth: the index is built from it and kept in step
//! through its change feed ([`ChangeCursor`], `Store::changed_people`), so that several nodes
//! on one database each keep their own and every answer stays exact.
//!
//! - [`grams`]: which people contain each folded letter and letter pair (roaring bitmaps);
//! - [`texts`]: each person's folded search text and sort keys, in one arena;
//! - [`order`]: the people in the order of each sort column, built when first needed;
//! - [`index`]: the whole, and how a query is answered from it.

mod grams;
mod index;
mod order;
mod texts;

pub use index::{IndexError, OrderNeeded, SearchHits, SearchIndex};

#[cfg(test)]
mod tests;

use time::OffsetDateTime;

use crate::people::{PersonType, Source};

/// What the index keeps of one person, as the store's change feed gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPerson {
    pub id: i64,
    pub username: String,
    /// The folded names and the lower-cased email, as the store sorts by them.
    pub first_name_key: String,
    pub last_name_key: String,
    pub email_key: String,
    /// The store's search text: folded `username first last email`.
    pub search_text: String,
    pub created_at: OffsetDateTime,
    pub last_login_at: Option<OffsetDateTime>,
    pub enabled: bool,
    pub invited: bool,
    pub kind: PersonType,
    pub source: Source,
    /// Where this version of the person stands in the change feed.
    pub change: ChangeKey,
}

/// A position in the change feed: the change number of a person's last write (a sequence on
/// SQLite, the writing transaction's id on PostgreSQL), then the person's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ChangeKey {
    pub seq: i64,
    pub id: i64,
}

/// How far a reader of the change feed has seen: every change numbered below `below`, except
/// those in `pending` (on PostgreSQL, transactions still running when the cursor was taken,
/// which may commit later with a smaller number than some already seen).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeCursor {
    pub below: i64,
    pub pending: Vec<i64>,
}

impl ChangeCursor {
    /// Before any change: reading from here reads every person.
    pub fn origin() -> Self {
        Self::default()
    }

    /// Whether a change numbered `seq` may not have been seen from this cursor.
    pub fn unseen(&self, seq: i64) -> bool {
        seq >= self.below || self.pending.contains(&seq)
    }
}
