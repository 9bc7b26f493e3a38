//! Each person's folded search text, kept in one arena so that a million people cost their
//! bytes and a few integers each rather than an allocation each. The sort keys are parts of
//! that text (`username first last email`), located by their lengths; an email whose sort key
//! (lower-cased) differs from its folded form keeps its key on the side.

use std::collections::HashMap;

use super::index::IndexError;
use super::IndexedPerson;

/// Where a person's text sits in the arena, and the lengths of its first three parts.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
    username: u16,
    first: u16,
    last: u16,
}

#[derive(Debug, Default)]
pub(super) struct Texts {
    arena: String,
    spans: Vec<Span>,
    /// Bytes of the arena no span points at any more; compacted away past half.
    garbage: usize,
    emails: HashMap<u32, Box<str>>,
}

impl Texts {
    /// Keeps `person`'s text for `slot`, replacing any earlier one.
    pub fn set(&mut self, slot: u32, person: &IndexedPerson) -> Result<(), IndexError> {
        let username = person.username.as_str();
        let first = person.first_name_key.as_str();
        let last = person.last_name_key.as_str();
        let text = person.search_text.as_str();
        let email = split_text(text, username, first, last).ok_or_else(|| {
            IndexError::Unsupported(format!(
                "the search text of person {} is not `username first last email`",
                person.id
            ))
        })?;
        let lengths = (
            u16::try_from(username.len()),
            u16::try_from(first.len()),
            u16::try_from(last.len()),
        );
        let (Ok(username), Ok(first), Ok(last)) = lengths else {
            return Err(IndexError::Unsupported(format!(
                "person {} has a part longer than 65,535 bytes",
                person.id
            )));
        };
        self.clear(slot);
        if self.garbage > 1 << 20 && self.garbage > self.arena.len() / 2 {
            self.compact();
        }
        let start = u32::try_from(self.arena.len())
            .ok()
            .filter(|start| start.checked_add(text.len() as u32).is_some())
            .ok_or_else(|| IndexError::Unsupported("more than 4 GiB of search text".into()))?;
        self.arena.push_str(text);
        let index = slot as usize;
        if self.spans.len() <= index {
            self.spans.resize(index + 1, Span::default());
        }
        self.spans[index] = Span {
            start,
            len: text.len() as u32,
            username,
            first,
            last,
        };
        if email != person.email_key {
            self.emails.insert(slot, person.email_key.as_str().into());
        }
        Ok(())
    }

    /// Forgets `slot`'s text.
    pub fn clear(&mut self, slot: u32) {
        if let Some(span) = self.spans.get_mut(slot as usize) {
            self.garbage += span.len as usize;
            *span = Span::default();
        }
        self.emails.remove(&slot);
    }

    fn span(&self, slot: u32) -> Span {
        self.spans.get(slot as usize).copied().unwrap_or_default()
    }

    /// The whole folded search text.
    pub fn text(&self, slot: u32) -> &str {
        let span = self.span(slot);
        &self.arena[span.start as usize..(span.start + span.len) as usize]
    }

    pub fn username(&self, slot: u32) -> &str {
        let span = self.span(slot);
        let start = span.start as usize;
        &self.arena[start..start + span.username as usize]
    }

    pub fn first_name(&self, slot: u32) -> &str {
        let span = self.span(slot);
        let start = span.start as usize + span.username as usize + 1;
        &self.arena[start..start + span.first as usize]
    }

    pub fn last_name(&self, slot: u32) -> &str {
        let span = self.span(slot);
        let start = span.start as usize + span.username as usize + span.first as usize + 2;
        &self.arena[start..start + span.last as usize]
    }

    pub fn email(&self, slot: u32) -> &str {
        if let Some(email) = self.emails.get(&slot) {
            return email;
        }
        let span = self.span(slot);
        let skip = span.username as usize + span.first as usize + span.last as usize + 3;
        let start = span.start as usize + skip;
        &self.arena[start..(span.start + span.len) as usize]
    }

    /// Rewrites the arena with only the texts still pointed at.
    fn compact(&mut self) {
        let mut arena = String::with_capacity(self.arena.len() - self.garbage);
        for span in &mut self.spans {
            if span.len == 0 {
                continue;
            }
            let start = arena.len() as u32;
            arena.push_str(&self.arena[span.start as usize..(span.start + span.len) as usize]);
            span.start = start;
        }
        self.arena = arena;
        self.garbage = 0;
    }

    /// Bytes held, for the index's size report.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.spans.capacity() * std::mem::size_of::<Span>()
    }
}

/// The email part of `text` when it is `username first last email`, else `None`.
fn split_text<'t>(text: &'t str, username: &str, first: &str, last: &str) -> Option<&'t str> {
    let rest = text.strip_prefix(username)?.strip_prefix(' ')?;
    let rest = rest.strip_prefix(first)?.strip_prefix(' ')?;
    rest.strip_prefix(last)?.strip_prefix(' ')
}
