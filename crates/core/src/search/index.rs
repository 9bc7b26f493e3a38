//! The index itself: people as bitmaps of their ids (all, disabled, connected, invited,
//! external, from LDAP), their texts and grams, their times, and the orders built so far; and
//! how a [`UserFilter`] with a sort and a page is answered from them, exactly as the store's
//! SQL would answer it.

use std::cmp::Ordering;

use super::grams::Grams;
use super::order::{Order, STALE_LIMIT};
use super::texts::Texts;
use super::IndexedPerson;
use crate::clock::to_millis;
use crate::fold::search_words;
use crate::people::{PersonType, Source};
use crate::query::{EnrollmentFilter, Sort, SortColumn, UserFilter};
use roaring::RoaringBitmap;

/// Below this many matches, a page is picked by sorting the matches themselves; above, by
/// walking the column's built order.
const SMALL_MATCH: u64 = 4096;

/// A time that is absent (never connected).
const NO_TIME: i64 = i64::MIN;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index cannot represent this person (an id beyond 2³², an unexpected search text):
    /// the caller stops using the index and the store answers instead.
    #[error("the search index cannot hold this: {0}")]
    Unsupported(String),
}

/// A search answered: the exact number of matches and one page of their ids, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHits {
    pub total: u64,
    pub ids: Vec<i64>,
}

/// The search needs the order of this column (re)built first: call
/// [`SearchIndex::build_order`] with exclusive access, then search again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderNeeded(pub SortColumn);

pub struct SearchIndex {
    /// [`SMALL_MATCH`], lowered by tests to walk orders with few people.
    small_match: u64,
    /// [`STALE_LIMIT`], likewise.
    stale_limit: u64,
    texts: Texts,
    grams: Grams,
    live: RoaringBitmap,
    disabled: RoaringBitmap,
    connected: RoaringBitmap,
    invited: RoaringBitmap,
    external: RoaringBitmap,
    ldap: RoaringBitmap,
    created_at: Vec<i64>,
    last_login_at: Vec<i64>,
    orders: [Option<Order>; 6],
}

fn column_index(column: SortColumn) -> usize {
    match column {
        SortColumn::Username => 0,
        SortColumn::FirstName => 1,
        SortColumn::LastName => 2,
        SortColumn::Email => 3,
        SortColumn::LastLoginAt => 4,
        SortColumn::CreatedAt => 5,
    }
}

fn slot_of(id: i64) -> Option<u32> {
    u32::try_from(id).ok()
}

fn set_bit(bitmap: &mut RoaringBitmap, slot: u32, on: bool) {
    if on {
        bitmap.insert(slot);
    } else {
        bitmap.remove(slot);
    }
}

impl Default for SearchIndex {
    fn default() -> Self {
        Self::with_limits(SMALL_MATCH, STALE_LIMIT)
    }
}

impl SearchIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// An index that walks built orders above `small_match` matches and rebuilds an order
    /// past `stale_limit` changed people.
    pub fn with_limits(small_match: u64, stale_limit: u64) -> Self {
        Self {
            small_match,
            stale_limit,
            texts: Texts::default(),
            grams: Grams::default(),
            live: RoaringBitmap::new(),
            disabled: RoaringBitmap::new(),
            connected: RoaringBitmap::new(),
            invited: RoaringBitmap::new(),
            external: RoaringBitmap::new(),
            ldap: RoaringBitmap::new(),
            created_at: Vec::new(),
            last_login_at: Vec::new(),
            orders: Default::default(),
        }
    }

    /// How many people the index holds.
    pub fn len(&self) -> u64 {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Adds `person`, or replaces what the index held of them.
    pub fn upsert(&mut self, person: &IndexedPerson) -> Result<(), IndexError> {
        let slot = slot_of(person.id).ok_or_else(|| {
            IndexError::Unsupported(format!("person id {} is beyond 2³²", person.id))
        })?;
        if self.live.contains(slot) {
            if self.texts.text(slot) != person.search_text {
                self.grams.remove(slot, self.texts.text(slot));
                self.texts.set(slot, person)?;
                self.grams.add(slot, &person.search_text);
            } else if self.texts.username(slot) != person.username
                || self.texts.first_name(slot) != person.first_name_key
                || self.texts.last_name(slot) != person.last_name_key
                || self.texts.email(slot) != person.email_key
            {
                // Same text, other parts (`a b`/`c` and `a`/`b c` read alike): keep the new
                // split. A status change (a login, a disable) leaves the arena alone.
                self.texts.set(slot, person)?;
            }
        } else {
            self.texts.set(slot, person)?;
            self.grams.add(slot, &person.search_text);
            self.live.insert(slot);
        }
        set_bit(&mut self.disabled, slot, !person.enabled);
        set_bit(&mut self.connected, slot, person.last_login_at.is_some());
        set_bit(&mut self.invited, slot, person.invited);
        set_bit(
            &mut self.external,
            slot,
            person.kind == PersonType::External,
        );
        set_bit(&mut self.ldap, slot, person.source == Source::Ldap);
        let index = slot as usize;
        if self.created_at.len() <= index {
            self.created_at.resize(index + 1, NO_TIME);
            self.last_login_at.resize(index + 1, NO_TIME);
        }
        self.created_at[index] = to_millis(person.created_at);
        self.last_login_at[index] = person.last_login_at.map_or(NO_TIME, to_millis);
        self.mark_stale(slot);
        Ok(())
    }

    /// Forgets the person `id` (deleted).
    pub fn remove(&mut self, id: i64) {
        let Some(slot) = slot_of(id) else { return };
        if !self.live.remove(slot) {
            return;
        }
        self.grams.remove(slot, self.texts.text(slot));
        self.texts.clear(slot);
        for bitmap in [
            &mut self.disabled,
            &mut self.connected,
            &mut self.invited,
            &mut self.external,
            &mut self.ldap,
        ] {
            bitmap.remove(slot);
        }
        self.mark_stale(slot);
    }

    fn mark_stale(&mut self, slot: u32) {
        for order in self.orders.iter_mut().flatten() {
            order.stale.insert(slot);
        }
    }

    /// The people matching `filter`: every word contained in their text, every status met.
    pub fn matching(&self, filter: &UserFilter) -> RoaringBitmap {
        let mut set = self.live.clone();
        match filter.enabled {
            Some(true) => set -= &self.disabled,
            Some(false) => set &= &self.disabled,
            None => {}
        }
        match filter.connected {
            Some(true) => set &= &self.connected,
            Some(false) => set -= &self.connected,
            None => {}
        }
        match filter.enrollment {
            Some(EnrollmentFilter::Enrolled) => set &= &self.invited,
            Some(EnrollmentFilter::NeverEnrolled) => {
                set -= &self.invited;
                set -= &self.connected;
                set -= &self.external;
                set -= &self.ldap;
            }
            Some(EnrollmentFilter::NotPossible) => {
                let mut possible_not = &self.connected - &self.invited;
                possible_not |= &self.external;
                possible_not |= &self.ldap;
                set &= &possible_not;
            }
            None => {}
        }
        match filter.kind {
            Some(PersonType::External) => set &= &self.external,
            Some(PersonType::Internal) => set -= &self.external,
            None => {}
        }
        match filter.source {
            Some(Source::Ldap) => set &= &self.ldap,
            Some(Source::Internal) => set -= &self.ldap,
            None => {}
        }
        if let Some(q) = &filter.q {
            let mut words = search_words(q);
            // Short words are plain lookups: narrow with them first, so that longer words
            // check fewer candidates against the text.
            words.sort_by_key(|w| w.chars().count());
            for word in words {
                if set.is_empty() {
                    break;
                }
                set = self.containing(&word, set);
            }
        }
        set
    }

    /// Those of `within` whose text contains `word` (which holds no whitespace).
    fn containing(&self, word: &str, mut within: RoaringBitmap) -> RoaringBitmap {
        let letters: Vec<char> = word.chars().collect();
        match letters.as_slice() {
            [] => within,
            [c] => match self.grams.letter(*c) {
                Some(people) => within & people,
                None => RoaringBitmap::new(),
            },
            [a, b] => match self.grams.pair(*a, *b) {
                Some(people) => within & people,
                None => RoaringBitmap::new(),
            },
            [a, b, c] => match self.grams.triple(*a, *b, *c) {
                Some(people) => within & people,
                None => RoaringBitmap::new(),
            },
            _ => {
                let mut triples: Vec<&RoaringBitmap> = Vec::with_capacity(letters.len());
                for triple in letters.windows(3) {
                    match self.grams.triple(triple[0], triple[1], triple[2]) {
                        Some(people) => triples.push(people),
                        None => return RoaringBitmap::new(),
                    }
                }
                triples.sort_by_key(|people| people.len());
                for people in triples {
                    within &= people;
                    if within.is_empty() {
                        return within;
                    }
                }
                within
                    .iter()
                    .filter(|&slot| self.texts.text(slot).contains(word))
                    .collect()
            }
        }
    }

    /// Answers a search: the exact total and the page `offset..offset + limit` in `sort`'s
    /// order (ties by username), or [`OrderNeeded`] when the column's order must be built.
    pub fn search(
        &self,
        filter: &UserFilter,
        sort: Sort,
        offset: u64,
        limit: u32,
    ) -> Result<SearchHits, OrderNeeded> {
        let set = self.matching(filter);
        let total = set.len();
        if offset >= total || limit == 0 {
            return Ok(SearchHits {
                total,
                ids: Vec::new(),
            });
        }
        let want = offset.saturating_add(u64::from(limit)).min(total) as usize;
        let page: Vec<u32> = if total <= self.small_match {
            let mut slots: Vec<u32> = set.iter().collect();
            if want < slots.len() {
                slots.select_nth_unstable_by(want - 1, |&a, &b| self.compare(a, b, sort));
                slots.truncate(want);
            }
            slots.sort_unstable_by(|&a, &b| self.compare(a, b, sort));
            slots.into_iter().skip(offset as usize).collect()
        } else {
            let order = self.orders[column_index(sort.column)]
                .as_ref()
                .filter(|order| order.stale.len() <= self.stale_limit)
                .ok_or(OrderNeeded(sort.column))?;
            let mut moved: Vec<u32> = (&set & &order.stale).iter().collect();
            moved.sort_unstable_by(|&a, &b| self.compare(a, b, sort));
            let settled = order
                .walk(sort.descending)
                .filter(|&slot| set.contains(slot) && !order.stale.contains(slot));
            merge(settled, moved.into_iter(), |&a, &b| {
                self.compare(a, b, sort) != Ordering::Greater
            })
            .skip(offset as usize)
            .take(want - offset as usize)
            .collect()
        };
        Ok(SearchHits {
            total,
            ids: page.into_iter().map(i64::from).collect(),
        })
    }

    /// Rebuilds every order too stale to use, and builds the default sort's order if missing:
    /// called after many people changed at once (a load, an import), so that no search pays
    /// for it (20 ms at 100,000 people, 0.3 s at 1,000,000).
    pub fn refresh_orders(&mut self) {
        let default = Sort::default().column;
        for column in SortColumn::ALL {
            let usable = match &self.orders[column_index(column)] {
                Some(order) => order.stale.len() <= self.stale_limit,
                None => column != default,
            };
            if !usable {
                self.build_order(column);
            }
        }
    }

    /// Builds the order of `column` afresh from every person held.
    pub fn build_order(&mut self, column: SortColumn) {
        let ascending = Sort {
            column,
            descending: false,
        };
        let mut keyed: Vec<(u64, u32)> = self
            .live
            .iter()
            .map(|slot| (self.prefix(slot, column), slot))
            .collect();
        keyed.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.compare(a.1, b.1, ascending))
        });
        let slots: Vec<u32> = keyed.into_iter().map(|(_, slot)| slot).collect();
        let absent_from = match column {
            SortColumn::LastLoginAt => slots
                .iter()
                .position(|&slot| self.last_login_at[slot as usize] == NO_TIME)
                .unwrap_or(slots.len()),
            _ => slots.len(),
        };
        self.orders[column_index(column)] = Some(Order::new(slots, absent_from));
    }

    /// The order of two people in a search sorted by `sort`, as the store's `ORDER BY column,
    /// username` sorts them (bytewise; absent times last in both directions).
    fn compare(&self, a: u32, b: u32, sort: Sort) -> Ordering {
        let texts = &self.texts;
        let by_username = || texts.username(a).cmp(texts.username(b));
        let ordering = match sort.column {
            SortColumn::Username => by_username(),
            SortColumn::FirstName => texts
                .first_name(a)
                .cmp(texts.first_name(b))
                .then_with(by_username),
            SortColumn::LastName => texts
                .last_name(a)
                .cmp(texts.last_name(b))
                .then_with(by_username),
            SortColumn::Email => texts.email(a).cmp(texts.email(b)).then_with(by_username),
            SortColumn::LastLoginAt | SortColumn::CreatedAt => {
                let times = if sort.column == SortColumn::CreatedAt {
                    &self.created_at
                } else {
                    &self.last_login_at
                };
                let (x, y) = (times[a as usize], times[b as usize]);
                match (x == NO_TIME, y == NO_TIME) {
                    (true, false) => return Ordering::Greater,
                    (false, true) => return Ordering::Less,
                    _ => x.cmp(&y).then_with(by_username),
                }
            }
        };
        if sort.descending {
            ordering.reverse()
        } else {
            ordering
        }
    }

    /// A number whose order agrees with the ascending order of `column` wherever two differ:
    /// the first 8 bytes of the key, or the time (absent last). Sorting by it first, then by
    /// the full comparison on ties, builds an order several times faster.
    fn prefix(&self, slot: u32, column: SortColumn) -> u64 {
        let key = match column {
            SortColumn::Username => self.texts.username(slot),
            SortColumn::FirstName => self.texts.first_name(slot),
            SortColumn::LastName => self.texts.last_name(slot),
            SortColumn::Email => self.texts.email(slot),
            SortColumn::LastLoginAt | SortColumn::CreatedAt => {
                let times = if column == SortColumn::CreatedAt {
                    &self.created_at
                } else {
                    &self.last_login_at
                };
                let time = times[slot as usize];
                return if time == NO_TIME {
                    u64::MAX
                } else {
                    (time as u64) ^ (1 << 63)
                };
            }
        };
        let mut bytes = [0u8; 8];
        let n = key.len().min(8);
        bytes[..n].copy_from_slice(&key.as_bytes()[..n]);
        u64::from_be_bytes(bytes)
    }

    /// Approximate bytes held, for logs and the benchmark's notes.
    pub fn heap_bytes(&self) -> usize {
        let bitmaps = [
            &self.live,
            &self.disabled,
            &self.connected,
            &self.invited,
            &self.external,
            &self.ldap,
        ]
        .iter()
        .map(|b| b.serialized_size())
        .sum::<usize>();
        self.texts.heap_bytes()
            + self.grams.heap_bytes()
            + bitmaps
            + (self.created_at.capacity() + self.last_login_at.capacity()) * 8
            + self
                .orders
                .iter()
                .flatten()
                .map(Order::heap_bytes)
                .sum::<usize>()
    }
}

/// Merges two sorted iterators; `first_goes_first(a, b)` says whether `a` precedes `b`.
fn merge<I, J, F>(left: I, right: J, first_goes_first: F) -> impl Iterator<Item = u32>
where
    I: Iterator<Item = u32>,
    J: Iterator<Item = u32>,
    F: Fn(&u32, &u32) -> bool,
{
    let mut left = left.peekable();
    let mut right = right.peekable();
    std::iter::from_fn(move || match (left.peek(), right.peek()) {
        (Some(a), Some(b)) => {
            if first_goes_first(a, b) {
                left.next()
            } else {
                right.next()
            }
        }
        (Some(_), None) => left.next(),
        (None, _) => right.next(),
    })
}
