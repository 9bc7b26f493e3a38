//! The people change feed: a reader that catches up from its cursor holds exactly what a full
//! read holds, whatever wrote to `people` (store methods, raw SQL, deletions), and on
//! PostgreSQL a transaction that commits after a later one is still seen.

use std::collections::BTreeMap;

use usher_core::audit::actions;
use usher_core::search::{ChangeCursor, IndexedPerson};
use usher_core::store::{PersonUpdate, Store};
use usher_store::{Pool, SqlStore};

use crate::support::*;

/// A reader of the feed, as the search index reads it, with a tiny page to exercise paging.
struct Mirror {
    cursor: ChangeCursor,
    people: BTreeMap<i64, IndexedPerson>,
}

impl Mirror {
    fn new() -> Self {
        Self {
            cursor: ChangeCursor::origin(),
            people: BTreeMap::new(),
        }
    }

    async fn catch_up(&mut self, store: &SqlStore) {
        let next = store.people_change_cursor().await.unwrap();
        for id in store.removed_people(&self.cursor).await.unwrap() {
            self.people.remove(&id);
        }
        let mut after = None;
        loop {
            let page = store.changed_people(&self.cursor, after, 2).await.unwrap();
            for person in &page {
                self.people.insert(person.id, person.clone());
            }
            if page.len() < 2 {
                break;
            }
            after = page.last().map(|p| p.change);
        }
        self.cursor = next;
    }

    fn usernames(&self) -> Vec<&str> {
        self.people.values().map(|p| p.username.as_str()).collect()
    }
}

/// Everyone, read from the origin.
async fn everyone(store: &SqlStore) -> BTreeMap<i64, IndexedPerson> {
    let mut mirror = Mirror::new();
    mirror.catch_up(store).await;
    mirror.people
}

/// The people as the mirror holds them, without their change positions (which differ
/// between a caught-up reader and a full read only in when they were read).
fn values(people: &BTreeMap<i64, IndexedPerson>) -> Vec<IndexedPerson> {
    people
        .values()
        .map(|p| IndexedPerson {
            change: Default::default(),
            ..p.clone()
        })
        .collect()
}

usher_store::on_both_backends! {
    async fn a_reader_that_catches_up_holds_what_a_full_read_holds(db) {
        let store = db.store().await;
        let mut mirror = Mirror::new();
        mirror.catch_up(&store).await;
        assert!(mirror.people.is_empty());

        let ana = insert(&store, new_person("ana.vito", "Ána", "Vito")).await;
        let bo = insert(&store, new_person("bo.lind", "Bo", "Lind")).await;
        let cy = insert(&store, new_person("cy.ross", "Cy", "Ross")).await;
        mirror.catch_up(&store).await;
        assert_eq!(mirror.usernames(), ["ana.vito", "bo.lind", "cy.ross"]);
        let ana_indexed = &mirror.people[&ana.id];
        assert_eq!(ana_indexed.first_name_key, "ana");
        assert_eq!(ana_indexed.search_text, "ana.vito ana vito ana.vito@example.org");
        assert!(ana_indexed.enabled && !ana_indexed.invited);
        assert_eq!(ana_indexed.last_login_at, None);

        // Nothing new: nothing read, nothing changed.
        mirror.catch_up(&store).await;
        assert_eq!(mirror.people.len(), 3);

        // Writes of every kind: a store update, a login, a mass disable, raw SQL, a deletion.
        let mut update = PersonUpdate::from_person(&bo);
        update.last_name = "Lindqvist".into();
        store
            .update_person_notifying(bo.id, &update, &audit(actions::USER_UPDATE, "bo.lind", at(1)), &[])
            .await
            .unwrap();
        store.record_login(cy.id, at(2)).await.unwrap();
        store
            .set_enabled_many(&[ana.id], false, &[audit(actions::USER_DISABLE, "ana.vito", at(3))])
            .await
            .unwrap();
        set_invited_at(&store, cy.id, at(4)).await;
        store
            .delete_person(ana.id, &audit(actions::USER_DELETE, "ana.vito", at(5)))
            .await
            .unwrap();
        let di = insert(&store, new_person("di.park", "Di", "Park")).await;
        mirror.catch_up(&store).await;

        assert_eq!(values(&mirror.people), values(&everyone(&store).await));
        assert_eq!(mirror.usernames(), ["bo.lind", "cy.ross", "di.park"]);
        assert_eq!(mirror.people[&bo.id].last_name_key, "lindqvist");
        assert_eq!(mirror.people[&cy.id].last_login_at, Some(at(2)));
        assert!(mirror.people[&cy.id].invited);
        assert!(mirror.people.contains_key(&di.id));
    }

    async fn people_are_fetched_by_id_in_the_order_asked(db) {
        let store = db.store().await;
        let a = insert_named(&store, "a.a").await;
        let b = insert_named(&store, "b.b").await;
        let got = store.people_by_ids(&[b.id, 999_999, a.id]).await.unwrap();
        let names: Vec<&str> = got.iter().map(|p| p.username.as_str()).collect();
        assert_eq!(names, ["b.b", "a.a"]);
        assert!(store.people_by_ids(&[]).await.unwrap().is_empty());
    }

    async fn a_write_committed_after_a_later_one_is_not_missed(db) {
        let store = db.store().await;
        // SQLite has one writer at a time: commits come in the order of their numbers, so
        // only PostgreSQL can commit an earlier-numbered change after a later one.
        let Pool::Postgres(pool) = store.pool() else { return };
        let mut mirror = Mirror::new();
        mirror.catch_up(&store).await;

        let mut slow = pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO people (username, first_name, last_name, email, email_key, \
             first_name_key, last_name_key, search_text, enabled, kind, source, created_at) \
             VALUES ('slow.one', 'Slow', 'One', 'slow.one@example.org', 'slow.one@example.org', \
             'slow', 'one', 'slow.one slow one slow.one@example.org', TRUE, 'internal', \
             'internal', 0)",
        )
        .execute(&mut *slow)
        .await
        .unwrap();
        insert_named(&store, "quick.one").await;
        mirror.catch_up(&store).await;
        assert_eq!(mirror.usernames(), ["quick.one"]);

        slow.commit().await.unwrap();
        mirror.catch_up(&store).await;
        let mut names = mirror.usernames();
        names.sort_unstable();
        assert_eq!(names, ["quick.one", "slow.one"]);
    }
}
