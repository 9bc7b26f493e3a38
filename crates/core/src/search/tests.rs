//! The index against a plain model of the store's SQL: every filter, word, sort and page of a
//! randomly written population gives the same total and the same ids in the same order.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

use super::*;
use crate::fold::{fold, search_text, search_words};
use crate::query::{EnrollmentFilter, Sort, SortColumn, UserFilter};

const SYLLABLES: &[&str] = &[
    "ba", "vo", "li", "na", "ter", "é", "ño", "st", "ma", "ri", "ae", "ø", "x",
];

fn name(rng: &mut StdRng) -> String {
    let mut name = String::new();
    for _ in 0..rng.gen_range(1..4) {
        name.push_str(SYLLABLES[rng.gen_range(0..SYLLABLES.len())]);
    }
    if rng.gen_bool(0.05) {
        name.push_str(" Jo");
    }
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => name,
    }
}

fn at(ms: i64) -> OffsetDateTime {
    crate::clock::from_millis(ms)
}

fn person(rng: &mut StdRng, id: i64) -> IndexedPerson {
    let first = name(rng);
    let last = name(rng);
    let username = format!("{}.{}{id}", fold(&first), fold(&last)).replace(' ', "");
    let email = if rng.gen_bool(0.1) {
        format!("Zoë.{username}@Example.test")
    } else {
        format!("{username}@example.test")
    };
    IndexedPerson {
        id,
        search_text: search_text(&username, &first, &last, &email),
        first_name_key: fold(&first),
        last_name_key: fold(&last),
        email_key: email.to_lowercase(),
        username,
        created_at: at(rng.gen_range(0..50)),
        last_login_at: rng.gen_bool(0.5).then(|| at(rng.gen_range(0..20))),
        enabled: rng.gen_bool(0.8),
        invited: rng.gen_bool(0.4),
        kind: if rng.gen_bool(0.2) {
            PersonType::External
        } else {
            PersonType::Internal
        },
        source: if rng.gen_bool(0.1) {
            Source::Ldap
        } else {
            Source::Internal
        },
        change: ChangeKey::default(),
    }
}

/// What the store's SQL selects.
fn model_matches(p: &IndexedPerson, f: &UserFilter) -> bool {
    let connected = p.last_login_at.is_some();
    let external = p.kind == PersonType::External;
    let ldap = p.source == Source::Ldap;
    f.q.as_deref().is_none_or(|q| {
        search_words(q)
            .iter()
            .all(|w| p.search_text.contains(w.as_str()))
    }) && f.enabled.is_none_or(|e| p.enabled == e)
        && f.connected.is_none_or(|c| connected == c)
        && f.enrollment.is_none_or(|e| match e {
            EnrollmentFilter::Enrolled => p.invited,
            EnrollmentFilter::NeverEnrolled => !p.invited && !connected && !external && !ldap,
            EnrollmentFilter::NotPossible => external || ldap || (connected && !p.invited),
        })
        && f.kind.is_none_or(|k| p.kind == k)
        && f.source.is_none_or(|s| p.source == s)
}

/// `ORDER BY column dir NULLS LAST, username dir`.
fn model_compare(a: &IndexedPerson, b: &IndexedPerson, sort: Sort) -> Ordering {
    let key = |p: &IndexedPerson| -> (Option<String>, Option<OffsetDateTime>) {
        match sort.column {
            SortColumn::Username => (None, None),
            SortColumn::FirstName => (Some(p.first_name_key.clone()), None),
            SortColumn::LastName => (Some(p.last_name_key.clone()), None),
            SortColumn::Email => (Some(p.email_key.clone()), None),
            SortColumn::LastLoginAt => (None, p.last_login_at),
            SortColumn::CreatedAt => (None, Some(p.created_at)),
        }
    };
    let nullable = matches!(sort.column, SortColumn::LastLoginAt);
    let (ka, kb) = (key(a), key(b));
    if nullable {
        match (ka.1, kb.1) {
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            _ => {}
        }
    }
    let ordering = ka
        .cmp(&kb)
        .then_with(|| a.username.as_bytes().cmp(b.username.as_bytes()));
    if sort.descending {
        ordering.reverse()
    } else {
        ordering
    }
}

fn model_search(
    people: &BTreeMap<i64, IndexedPerson>,
    f: &UserFilter,
    sort: Sort,
    offset: u64,
    limit: u32,
) -> SearchHits {
    let mut found: Vec<&IndexedPerson> = people.values().filter(|p| model_matches(p, f)).collect();
    found.sort_by(|a, b| model_compare(a, b, sort));
    SearchHits {
        total: found.len() as u64,
        ids: found
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|p| p.id)
            .collect(),
    }
}

fn random_filter(rng: &mut StdRng, people: &BTreeMap<i64, IndexedPerson>) -> UserFilter {
    let q = if rng.gen_bool(0.7) && !people.is_empty() {
        let ids: Vec<&i64> = people.keys().collect();
        let text = &people[ids[rng.gen_range(0..ids.len())]].search_text;
        let chars: Vec<char> = text.chars().collect();
        let len = rng.gen_range(1..5).min(chars.len());
        let start = rng.gen_range(0..=chars.len() - len);
        let mut q: String = chars[start..start + len].iter().collect();
        if rng.gen_bool(0.2) {
            q.push_str(" B"); // a second word, upper-case: folded like the first
        }
        if rng.gen_bool(0.05) {
            q = "qqzz".into();
        }
        Some(q)
    } else {
        None
    };
    let maybe = |rng: &mut StdRng| rng.gen_bool(0.25);
    UserFilter {
        q,
        enabled: maybe(rng).then(|| rng.gen_bool(0.5)),
        connected: maybe(rng).then(|| rng.gen_bool(0.5)),
        enrollment: maybe(rng).then(|| {
            [
                EnrollmentFilter::Enrolled,
                EnrollmentFilter::NeverEnrolled,
                EnrollmentFilter::NotPossible,
            ][rng.gen_range(0..3)]
        }),
        kind: maybe(rng).then(|| {
            if rng.gen_bool(0.5) {
                PersonType::External
            } else {
                PersonType::Internal
            }
        }),
        source: maybe(rng).then(|| {
            if rng.gen_bool(0.5) {
                Source::Ldap
            } else {
                Source::Internal
            }
        }),
    }
}

fn random_sort(rng: &mut StdRng) -> Sort {
    let column = SortColumn::ALL[rng.gen_range(0..6)];
    Sort {
        column,
        descending: rng.gen_bool(0.5),
    }
}

fn search(
    index: &mut SearchIndex,
    f: &UserFilter,
    sort: Sort,
    offset: u64,
    limit: u32,
) -> SearchHits {
    match index.search(f, sort, offset, limit) {
        Ok(hits) => hits,
        Err(OrderNeeded(column)) => {
            index.build_order(column);
            index.search(f, sort, offset, limit).expect("order built")
        }
    }
}

/// Writes, removes and searches at random, checking every answer against the model.
fn exercise(seed: u64, mut index: SearchIndex, rounds: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut people: BTreeMap<i64, IndexedPerson> = BTreeMap::new();
    for id in 1..=300 {
        let p = person(&mut rng, id);
        index.upsert(&p).unwrap();
        people.insert(id, p);
    }
    for round in 0..rounds {
        match rng.gen_range(0..10) {
            0..=2 => {
                let id = rng.gen_range(1..400);
                let p = person(&mut rng, id);
                index.upsert(&p).unwrap();
                people.insert(id, p);
            }
            3 => {
                let id = rng.gen_range(1..400);
                index.remove(id);
                people.remove(&id);
                if rng.gen_bool(0.1) {
                    index.refresh_orders();
                }
            }
            _ => {
                let filter = random_filter(&mut rng, &people);
                let sort = random_sort(&mut rng);
                let offset = if rng.gen_bool(0.8) {
                    0
                } else {
                    rng.gen_range(0..200)
                };
                let limit = rng.gen_range(0..30);
                let got = search(&mut index, &filter, sort, offset, limit);
                let want = model_search(&people, &filter, sort, offset, limit);
                assert_eq!(
                    got, want,
                    "seed {seed}, round {round}: {filter:?} sorted {sort:?}, offset {offset}, limit {limit}"
                );
            }
        }
        assert_eq!(index.len(), people.len() as u64);
    }
}

#[test]
fn answers_as_the_store_would_when_sorting_matches_directly() {
    for seed in 0..4 {
        exercise(seed, SearchIndex::new(), 1500);
    }
}

#[test]
fn answers_as_the_store_would_when_walking_built_orders() {
    // Few matches already walk orders, and a few writes already make them stale and rebuilt.
    for seed in 10..16 {
        exercise(seed, SearchIndex::with_limits(8, 16), 1500);
    }
}

#[test]
fn a_person_the_index_cannot_read_is_refused() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut p = person(&mut rng, 1);
    p.search_text = "something else".into();
    assert!(SearchIndex::new().upsert(&p).is_err());
    let mut p = person(&mut rng, 1i64 << 40);
    p.id = 1i64 << 40;
    assert!(SearchIndex::new().upsert(&p).is_err());
}

#[test]
fn cursors_know_what_they_have_not_seen() {
    let cursor = ChangeCursor {
        below: 10,
        pending: vec![7],
    };
    assert!(cursor.unseen(7) && cursor.unseen(10) && cursor.unseen(11));
    assert!(!cursor.unseen(6) && !cursor.unseen(9));
    assert!(ChangeCursor::origin().unseen(0));
}
