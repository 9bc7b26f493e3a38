//! The audit log: written with each change, read back filtered and paged.

use serde_json::json;
use usher_core::audit::{actions, AuditEntry, AuditFilter, AuditRecord};
use usher_core::store::{PersonUpdate, Store};
use usher_store::SqlStore;

use crate::support::*;

fn all() -> AuditFilter {
    AuditFilter {
        limit: 100,
        ..AuditFilter::default()
    }
}

async fn entries(store: &SqlStore, filter: AuditFilter) -> (Vec<AuditEntry>, u64) {
    let page = store.audit_entries(&filter).await.expect("audit entries");
    (page.items, page.total)
}

/// `(minute, actor, action, target)` of each entry, in the order given.
fn summary(entries: &[AuditEntry]) -> Vec<(i64, Option<&str>, &str, Option<&str>)> {
    entries
        .iter()
        .map(|e| {
            (
                (e.at - T0).whole_minutes(),
                e.actor.as_deref(),
                e.action.as_str(),
                e.target.as_deref(),
            )
        })
        .collect()
}

fn record(
    minute: i64,
    actor: Option<&str>,
    action: &'static str,
    target: Option<&str>,
) -> AuditRecord {
    AuditRecord {
        at: at(minute),
        actor: actor.map(str::to_owned),
        action,
        target: target.map(str::to_owned),
        details: json!({ "minute": minute }).into(),
    }
}

/// Six entries by two actors and the system, on two targets, over six minutes.
async fn log(store: &SqlStore) {
    for r in [
        record(1, None, actions::USER_CREATE, Some("alice")),
        record(2, Some("admin"), actions::USER_UPDATE, Some("alice")),
        record(3, Some("admin"), actions::USER_CREATE, Some("bob")),
        record(4, Some("manager"), actions::USER_DISABLE, Some("bob")),
        record(5, Some("admin"), actions::USER_ENABLE, Some("bob")),
        record(6, Some("manager"), actions::USER_UPDATE, Some("alice")),
    ] {
        store.append_audit(&r).await.unwrap();
    }
}

usher_store::on_both_backends! {
    async fn insert_update_and_delete_each_write_their_audit_entry(db) {
        let store = db.store().await;
        let created = AuditRecord {
            at: at(1),
            actor: None,
            action: actions::USER_CREATE,
            target: Some("jane.doe".into()),
            details: json!({ "after": { "username": "jane.doe", "groups": ["/platform/users"] } }).into(),
        };
        let person = store
            .insert_person(&new_person("jane.doe", "Jane", "Doe"), &created)
            .await
            .unwrap();
        let mut update = PersonUpdate::from_person(&person);
        update.first_name = "Janet".into();
        let updated = AuditRecord {
            at: at(2),
            actor: Some("admin".into()),
            action: actions::USER_UPDATE,
            target: Some("jane.doe".into()),
            details: json!({
                "before": { "first_name": "Jane" },
                "after": { "first_name": "Janet" },
            }).into(),
        };
        store
            .update_person(person.id, &update, &updated)
            .await
            .unwrap();
        let deleted = AuditRecord {
            at: at(3),
            actor: Some("admin".into()),
            action: actions::USER_DELETE,
            target: Some("jane.doe".into()),
            details: json!({}).into(),
        };
        store.delete_person(person.id, &deleted).await.unwrap();

        let (items, total) = entries(&store, all()).await;

        assert_eq!(total, 3);
        let expected: Vec<_> = [deleted, updated, created]
            .into_iter()
            .map(|r| (r.at, r.actor, r.action.to_owned(), r.target, r.details.to_value()))
            .collect();
        let actual: Vec<_> = items
            .into_iter()
            .map(|e| (e.at, e.actor, e.action, e.target, e.details))
            .collect();
        assert_eq!(actual, expected, "newest first, every value kept");
    }

    async fn creating_an_api_token_writes_its_audit_entry(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;

        store
            .insert_api_token(
                person.id,
                "ci",
                "token-hash",
                &record(7, Some("jane.doe"), actions::TOKEN_CREATE, Some("jane.doe")),
            )
            .await
            .unwrap();

        let filter = AuditFilter {
            action: Some(actions::TOKEN_CREATE.into()),
            ..all()
        };
        let (items, total) = entries(&store, filter).await;
        assert_eq!(total, 1);
        assert_eq!(
            summary(&items),
            [(7, Some("jane.doe"), actions::TOKEN_CREATE, Some("jane.doe"))]
        );
        assert_eq!(items[0].details, json!({ "minute": 7 }));
    }

    async fn appended_entries_keep_every_value_including_a_system_actor(db) {
        let store = db.store().await;
        let entry = AuditRecord {
            at: at(1),
            actor: None,
            action: actions::USER_PASSWORD_SET,
            target: None,
            details: json!({ "reason": "first start", "count": 2, "nested": [1, "two", null] }).into(),
        };

        store.append_audit(&entry).await.unwrap();

        let (items, total) = entries(&store, all()).await;
        assert_eq!(total, 1);
        assert!(items[0].id > 0);
        assert_eq!(items[0].at, at(1));
        assert_eq!(items[0].actor, None);
        assert_eq!(items[0].action, actions::USER_PASSWORD_SET);
        assert_eq!(items[0].target, None);
        assert_eq!(items[0].details, entry.details.to_value());
    }

    async fn a_persons_history_is_found_by_name_while_they_exist_and_after_their_deletion(db) {
        // Entries about a person are indexed by their id, the others (and, once the person is
        // deleted, theirs) by the target's text: a filter by name must find both kinds.
        let store = db.store().await;
        store
            .append_audit(&record(1, Some("admin"), actions::USER_INVITE, Some("jane.doe")))
            .await
            .unwrap();
        let jane = store
            .insert_person(
                &new_person("jane.doe", "Jane", "Doe"),
                &record(2, Some("admin"), actions::USER_CREATE, Some("jane.doe")),
            )
            .await
            .unwrap();
        insert_named(&store, "john.roe").await;
        for r in [
            record(3, Some("admin"), actions::USER_UPDATE, Some("jane.doe")),
            record(4, Some("admin"), actions::IMPORT_SUBMIT, Some("jane.doe")),
            record(5, Some("admin"), actions::USER_UPDATE, Some("john.roe")),
        ] {
            store.append_audit(&r).await.unwrap();
        }
        let of_jane = || AuditFilter {
            target: Some("jane.doe".into()),
            ..all()
        };
        let expected_before_deletion = [
            (4, Some("admin"), actions::IMPORT_SUBMIT, Some("jane.doe")),
            (3, Some("admin"), actions::USER_UPDATE, Some("jane.doe")),
            (2, Some("admin"), actions::USER_CREATE, Some("jane.doe")),
            (1, Some("admin"), actions::USER_INVITE, Some("jane.doe")),
        ];

        let (items, total) = entries(&store, of_jane()).await;
        assert_eq!(total, 4);
        assert_eq!(summary(&items), expected_before_deletion);
        let only_updates = AuditFilter {
            action: Some(actions::USER_UPDATE.into()),
            ..of_jane()
        };
        let (items, total) = entries(&store, only_updates).await;
        assert_eq!((total, summary(&items)), (1, vec![expected_before_deletion[1]]));

        store
            .delete_person(
                jane.id,
                &record(6, Some("admin"), actions::USER_DELETE, Some("jane.doe")),
            )
            .await
            .unwrap();

        let (items, total) = entries(&store, of_jane()).await;
        assert_eq!(total, 5, "the history outlives the person");
        assert_eq!(
            summary(&items)[0],
            (6, Some("admin"), actions::USER_DELETE, Some("jane.doe"))
        );
        assert_eq!(summary(&items)[1..], expected_before_deletion);
        let john = AuditFilter {
            target: Some("john.roe".into()),
            ..all()
        };
        let (items, _) = entries(&store, john).await;
        assert_eq!(
            summary(&items).iter().map(|e| e.2).collect::<Vec<_>>(),
            [actions::USER_UPDATE, actions::USER_CREATE]
        );
    }

    async fn audit_entries_come_newest_first_and_the_last_written_first_among_equal_times(db) {
        let store = db.store().await;
        store
            .append_audit(&record(2, None, actions::USER_CREATE, Some("b")))
            .await
            .unwrap();
        store
            .append_audit(&record(1, None, actions::USER_CREATE, Some("a")))
            .await
            .unwrap();
        store
            .append_audit(&record(2, None, actions::USER_UPDATE, Some("b")))
            .await
            .unwrap();
        store
            .append_audit(&record(3, None, actions::USER_CREATE, Some("c")))
            .await
            .unwrap();

        let (items, _) = entries(&store, all()).await;

        assert_eq!(
            summary(&items),
            [
                (3, None, actions::USER_CREATE, Some("c")),
                (2, None, actions::USER_UPDATE, Some("b")),
                (2, None, actions::USER_CREATE, Some("b")),
                (1, None, actions::USER_CREATE, Some("a")),
            ]
        );
    }

    async fn audit_entries_filter_by_actor(db) {
        let store = db.store().await;
        log(&store).await;

        let (items, total) = entries(
            &store,
            AuditFilter {
                actor: Some("manager".into()),
                ..all()
            },
        )
        .await;

        assert_eq!(total, 2);
        assert_eq!(
            summary(&items),
            [
                (6, Some("manager"), actions::USER_UPDATE, Some("alice")),
                (4, Some("manager"), actions::USER_DISABLE, Some("bob")),
            ]
        );
        let (items, total) = entries(
            &store,
            AuditFilter {
                actor: Some("nobody".into()),
                ..all()
            },
        )
        .await;
        assert_eq!((items.len(), total), (0, 0));
    }

    async fn audit_entries_filter_by_target(db) {
        let store = db.store().await;
        log(&store).await;

        let (items, total) = entries(
            &store,
            AuditFilter {
                target: Some("bob".into()),
                ..all()
            },
        )
        .await;

        assert_eq!(total, 3);
        assert_eq!(
            items
                .iter()
                .map(|e| (e.at - T0).whole_minutes())
                .collect::<Vec<_>>(),
            [5, 4, 3]
        );
    }

    async fn audit_entries_filter_by_action(db) {
        let store = db.store().await;
        log(&store).await;

        let (items, total) = entries(
            &store,
            AuditFilter {
                action: Some(actions::USER_UPDATE.into()),
                ..all()
            },
        )
        .await;

        assert_eq!(total, 2);
        assert_eq!(
            summary(&items),
            [
                (6, Some("manager"), actions::USER_UPDATE, Some("alice")),
                (2, Some("admin"), actions::USER_UPDATE, Some("alice")),
            ]
        );
    }

    async fn audit_entries_filter_from_since_inclusive_to_until_exclusive(db) {
        let store = db.store().await;
        log(&store).await;
        let minutes = |items: &[AuditEntry]| {
            items
                .iter()
                .map(|e| (e.at - T0).whole_minutes())
                .collect::<Vec<_>>()
        };

        let (items, total) = entries(
            &store,
            AuditFilter {
                since: Some(at(4)),
                ..all()
            },
        )
        .await;
        assert_eq!((minutes(&items), total), (vec![6, 5, 4], 3));

        let (items, total) = entries(
            &store,
            AuditFilter {
                until: Some(at(3)),
                ..all()
            },
        )
        .await;
        assert_eq!((minutes(&items), total), (vec![2, 1], 2));

        let (items, total) = entries(
            &store,
            AuditFilter {
                since: Some(at(2)),
                until: Some(at(5)),
                ..all()
            },
        )
        .await;
        assert_eq!((minutes(&items), total), (vec![4, 3, 2], 3));

        let (items, total) = entries(
            &store,
            AuditFilter {
                since: Some(at(4)),
                until: Some(at(4)),
                ..all()
            },
        )
        .await;
        assert_eq!((items.len(), total), (0, 0));
    }

    async fn audit_filters_combine(db) {
        let store = db.store().await;
        log(&store).await;

        let filter = AuditFilter {
            actor: Some("admin".into()),
            target: Some("bob".into()),
            ..all()
        };
        let (items, total) = entries(&store, filter.clone()).await;
        assert_eq!(total, 2);
        assert_eq!(
            summary(&items),
            [
                (5, Some("admin"), actions::USER_ENABLE, Some("bob")),
                (3, Some("admin"), actions::USER_CREATE, Some("bob")),
            ]
        );

        let filter = AuditFilter {
            action: Some(actions::USER_CREATE.into()),
            ..filter
        };
        let (items, total) = entries(&store, filter.clone()).await;
        assert_eq!(total, 1);
        assert_eq!(
            summary(&items),
            [(3, Some("admin"), actions::USER_CREATE, Some("bob"))]
        );

        let filter = AuditFilter {
            since: Some(at(4)),
            ..filter
        };
        let (items, total) = entries(&store, filter).await;
        assert_eq!((items.len(), total), (0, 0));
    }

    async fn audit_entries_page_with_the_exact_total(db) {
        let store = db.store().await;
        log(&store).await;

        let mut seen = Vec::new();
        for (offset, size) in [(0, 4), (4, 2)] {
            let (items, total) = entries(
                &store,
                AuditFilter {
                    limit: 4,
                    offset,
                    ..AuditFilter::default()
                },
            )
            .await;
            assert_eq!(total, 6, "offset {offset}");
            assert_eq!(items.len(), size, "offset {offset}");
            seen.extend(items.iter().map(|e| (e.at - T0).whole_minutes()));
        }
        assert_eq!(seen, [6, 5, 4, 3, 2, 1]);

        for offset in [6, 100, u64::MAX] {
            let (items, total) = entries(
                &store,
                AuditFilter {
                    limit: 4,
                    offset,
                    ..AuditFilter::default()
                },
            )
            .await;
            assert!(items.is_empty(), "offset {offset}");
            assert_eq!(total, 6, "offset {offset}");
        }

        let filter = AuditFilter {
            target: Some("alice".into()),
            limit: 1,
            offset: 1,
            ..AuditFilter::default()
        };
        let (items, total) = entries(&store, filter).await;
        assert_eq!(total, 3);
        assert_eq!(
            summary(&items),
            [(2, Some("admin"), actions::USER_UPDATE, Some("alice"))]
        );
    }
}
