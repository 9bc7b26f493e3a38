//! Import jobs: receiving a file, claiming under a lease, steps fenced by the lease and the
//! progress, finishing, the report, and the batch lookup.

use serde_json::json;
use usher_core::audit::{actions, AuditFilter, AuditRecord};
use usher_core::groups::USERS;
use usher_core::import::{
    ImportCounts, ImportIssue, ImportKeys, ImportLease, ImportState, ImportStep, ImportUpdate,
    NewImport, Severity,
};
use usher_core::people::Person;
use usher_core::store::{Conflict, PersonUpdate, Store, StoreError};
use usher_store::SqlStore;

use crate::support::*;

fn new_import(actor: &str) -> NewImport {
    NewImport {
        dry_run: false,
        file_name: Some("people.csv".into()),
        actor: Some(actor.into()),
        created_at: T0,
    }
}

fn lease(owner: &str, token: &str, minutes: i64) -> ImportLease {
    ImportLease {
        owner: owner.into(),
        token: token.into(),
        until: at(minutes),
    }
}

fn submit_audit() -> AuditRecord {
    audit(actions::IMPORT_SUBMIT, "people.csv", T0)
}

/// A job with `rows` rows and a two-chunk file, queued.
async fn queued_job(store: &SqlStore, rows: u64) -> i64 {
    let id = store.create_import(&new_import("admin")).await.unwrap();
    store
        .append_import_chunk(id, 0, b"userName,")
        .await
        .unwrap();
    store.append_import_chunk(id, 1, b"email\n").await.unwrap();
    store
        .queue_import(id, rows, 15, None, &submit_audit())
        .await
        .unwrap();
    id
}

fn issue(line: u64, code: &str, severity: Severity) -> ImportIssue {
    ImportIssue {
        line,
        username: format!("user{line}"),
        field: "email".into(),
        severity,
        code: code.into(),
        message: format!("=message {line}"),
    }
}

fn step(expected: u64, counts: ImportCounts) -> ImportStep {
    ImportStep {
        expected_processed: expected,
        counts,
        creates: Vec::new(),
        updates: Vec::new(),
        audits: Vec::new(),
        issues: Vec::new(),
        invites: Vec::new(),
        lease_until: at(30),
        prepared: None,
    }
}

async fn audit_total(store: &SqlStore, action: &str) -> u64 {
    store
        .audit_entries(&AuditFilter {
            action: Some(action.into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .total
}

usher_store::on_both_backends! {
    async fn a_job_is_invisible_until_its_file_is_complete_then_queued_with_its_rows(db) {
        let store = db.store().await;
        let id = store.create_import(&new_import("admin")).await.unwrap();
        assert_eq!(store.import_job(id).await.unwrap(), None);
        assert_eq!(store.import_jobs(10, 0).await.unwrap().total, 0);
        store.append_import_chunk(id, 0, b"userName,").await.unwrap();
        store.append_import_chunk(id, 1, b"email\n").await.unwrap();

        let job = store.queue_import(id, 42, 15, None, &submit_audit()).await.unwrap();

        assert_eq!(job.state, ImportState::Queued);
        assert_eq!(job.counts.rows, 42);
        assert_eq!(job.file_bytes, 15);
        assert_eq!(job.file_name.as_deref(), Some("people.csv"));
        assert_eq!(job.actor.as_deref(), Some("admin"));
        assert_eq!(job.started_at, None);
        assert_eq!(store.import_chunk(id, 0).await.unwrap().unwrap(), b"userName,");
        assert_eq!(store.import_chunk(id, 1).await.unwrap().unwrap(), b"email\n");
        assert_eq!(store.import_chunk(id, 2).await.unwrap(), None);
        assert_eq!(store.import_jobs(10, 0).await.unwrap().items, vec![job]);
        assert_eq!(audit_total(&store, actions::IMPORT_SUBMIT).await, 1);
    }

    async fn a_refused_or_abandoned_upload_leaves_nothing(db) {
        let store = db.store().await;
        let refused = store.create_import(&new_import("admin")).await.unwrap();
        store.append_import_chunk(refused, 0, b"junk").await.unwrap();
        store.discard_import(refused).await.unwrap();
        assert_eq!(store.import_chunk(refused, 0).await.unwrap(), None);

        let abandoned = store.create_import(&new_import("admin")).await.unwrap();
        let kept = queued_job(&store, 1).await;
        assert_eq!(store.purge_abandoned_imports(at(60)).await.unwrap(), 1);
        assert_eq!(store.import_chunk(abandoned, 0).await.unwrap(), None);
        assert!(store.import_job(kept).await.unwrap().is_some(), "queued jobs stay");
        assert!(store.queue_import(abandoned, 1, 1, None, &submit_audit()).await.is_err());
    }

    async fn claims_take_the_oldest_queued_job_once_each(db) {
        let store = db.store().await;
        let first = queued_job(&store, 1).await;
        let second = queued_job(&store, 1).await;

        let a = store.claim_import(&lease("node-a", "ta", 5), at(0), None).await.unwrap().unwrap();
        let b = store.claim_import(&lease("node-b", "tb", 5), at(0), None).await.unwrap().unwrap();
        let none = store.claim_import(&lease("node-c", "tc", 5), at(0), None).await.unwrap();

        assert_eq!((a.id, b.id), (first, second));
        assert_eq!(a.state, ImportState::Running);
        assert_eq!(a.owner.as_deref(), Some("node-a"));
        assert_eq!(a.started_at, Some(at(0)));
        assert_eq!(a.attempts, 1);
        assert_eq!(a.lease_until, Some(at(5)));
        assert!(none.is_none());
    }

    async fn a_running_job_is_taken_over_when_its_lease_ran_out_or_by_its_restarted_node(db) {
        let store = db.store().await;
        let id = queued_job(&store, 1).await;
        store.claim_import(&lease("node-a", "t1", 5), at(0), None).await.unwrap().unwrap();

        assert!(store.claim_import(&lease("node-b", "t2", 10), at(4), None).await.unwrap().is_none());
        let restarted = store
            .claim_import(&lease("node-a", "t3", 10), at(4), Some("node-a"))
            .await
            .unwrap()
            .expect("a restarted node takes its own job back at once");
        assert_eq!((restarted.id, restarted.attempts), (id, 2));

        let taken = store
            .claim_import(&lease("node-b", "t4", 20), at(11), None)
            .await
            .unwrap()
            .expect("another node takes over once the lease ran out");
        assert_eq!(taken.owner.as_deref(), Some("node-b"));
        assert_eq!(taken.started_at, Some(at(0)), "started_at is kept");
        assert_eq!(taken.attempts, 3);
    }

    async fn a_step_creates_updates_and_reports_in_one_transaction(db) {
        let store = db.store().await;
        step_with_every_kind_of_row(&store, false).await;
    }

    async fn a_step_prepared_ahead_writes_the_same(db) {
        // The planner prepares a step's rows in the store's form before its turn to commit.
        let store = db.store().await;
        step_with_every_kind_of_row(&store, true).await;
    }

    async fn each_new_person_of_a_step_gets_their_own_memberships_and_history(db) {
        // SQLite tells the new people's ids from the last one inserted: each membership and
        // audit entry must still reach its own person, after ids that a deleted person left.
        let store = db.store().await;
        for prepared in [false, true] {
            let gone = insert_named(&store, &format!("gone.before{prepared}")).await;
            store.delete_person(gone.id, &audit(actions::USER_DELETE, &gone.username, T0)).await.unwrap();
            let id = queued_job(&store, 3).await;
            store
                .claim_import(&lease("n", "tok", 5), at(0), None)
                .await
                .unwrap();
            let roles = ["member", "manager", "redactor"];
            let names: Vec<String> = (0..3).map(|i| format!("new.p{i}x{prepared}")).collect();
            let counts = ImportCounts {
                rows: 3,
                processed: 3,
                created: 3,
                ..ImportCounts::default()
            };
            let mut s = step(0, counts);
            for (name, role) in names.iter().zip(roles) {
                let mut p = new_person(name, "New", "Person");
                p.memberships = vec![(USERS.into(), role.into())];
                s.creates.push(p);
                let mut entry = audit(actions::USER_CREATE, name, at(1));
                entry.details = json!({ "role": role }).into();
                s.audits.push(entry);
            }
            if prepared {
                let creates: Vec<_> = s.creates.iter().collect();
                let audits: Vec<_> = s.audits.iter().collect();
                s.prepared = store.prepare_import_rows(&creates, &[], &audits);
            }
            store.apply_import_step(id, "tok", &s).await.unwrap();
            for (name, role) in names.iter().zip(roles) {
                let person = store.person_by_username(name).await.unwrap().unwrap();
                assert!(person.id > gone.id, "{name}");
                let memberships = store.memberships(person.id).await.unwrap();
                assert_eq!(memberships.len(), 1, "{name}");
                assert_eq!(memberships[0].role, role, "{name}");
                let history = store
                    .audit_entries(&AuditFilter {
                        target: Some(name.clone()),
                        limit: 10,
                        ..AuditFilter::default()
                    })
                    .await
                    .unwrap();
                assert_eq!(history.total, 1, "{name}");
                assert_eq!(history.items[0].details, json!({ "role": role }), "{name}");
            }
        }
    }

    async fn a_step_changes_the_key_only_of_the_addresses_that_changed(db) {
        // Two statements write a step's updates: one with the email's key, one without.
        let store = db.store().await;
        let moving = insert_named(&store, "moving.one").await;
        let staying = insert_named(&store, "staying.one").await;
        let id = queued_job(&store, 2).await;
        store.claim_import(&lease("n", "tok", 5), at(0), None).await.unwrap();
        let mut moved = PersonUpdate::from_person(&moving);
        moved.email = "elsewhere@example.org".into();
        let mut renamed = PersonUpdate::from_person(&staying);
        renamed.last_name = "Renamed".into();
        renamed.email = staying.email.to_uppercase();
        let update = |person: &Person, update: PersonUpdate, email_changed: bool| ImportUpdate {
            id: person.id,
            username: person.username.clone(),
            update,
            add_memberships: Vec::new(),
            notices: Vec::new(),
            end_sessions: false,
            email_changed,
        };
        let counts = ImportCounts { rows: 2, processed: 2, updated: 2, ..ImportCounts::default() };
        let mut s = step(0, counts);
        s.updates = vec![update(&staying, renamed, false), update(&moving, moved, true)];
        let cursor = store.people_change_cursor().await.unwrap();

        store.apply_import_step(id, "tok", &s).await.unwrap();

        let moving_now = store.person_by_email("ELSEWHERE@example.org").await.unwrap().unwrap();
        assert_eq!(moving_now.id, moving.id);
        assert!(store.person_by_email(&moving.email).await.unwrap().is_none(), "the old address is free");
        let staying_now = store.person_by_id(staying.id).await.unwrap().unwrap();
        assert_eq!((staying_now.last_name.as_str(), staying_now.email.clone()), ("Renamed", staying.email.to_uppercase()));
        assert_eq!(store.person_by_email(&staying.email).await.unwrap().unwrap().id, staying.id);
        // Both are in the change feed, each under a number of its own, with its email's key.
        let mut changed: Vec<(i64, String)> = store
            .changed_people(&cursor, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.id, p.email_key))
            .collect();
        changed.sort_unstable();
        assert_eq!(
            changed,
            [(moving.id, "elsewhere@example.org".to_owned()), (staying.id, staying.email.to_lowercase())]
        );
    }

    async fn a_step_is_refused_without_the_lease_or_at_the_wrong_progress(db) {
        let store = db.store().await;
        let id = queued_job(&store, 2).await;
        store.claim_import(&lease("n", "tok", 5), at(0), None).await.unwrap();
        let counts = ImportCounts { rows: 2, processed: 1, created: 1, ..ImportCounts::default() };
        let mut s = step(0, counts);
        s.creates = vec![new_person("some.one", "Some", "One")];

        assert!(matches!(store.apply_import_step(id, "stolen", &s).await, Err(StoreError::NotFound)));
        let mut late = s.clone();
        late.expected_processed = 1;
        assert!(matches!(store.apply_import_step(id, "tok", &late).await, Err(StoreError::NotFound)));
        assert!(store.person_by_username("some.one").await.unwrap().is_none(), "nothing written");

        store.apply_import_step(id, "tok", &s).await.unwrap();
        assert!(
            matches!(store.apply_import_step(id, "tok", &s).await, Err(StoreError::NotFound)),
            "the same step twice is refused: no row is applied twice"
        );
        assert_eq!(store.count_people().await.unwrap(), 1);
    }

    async fn a_step_that_clashes_on_an_email_or_a_deleted_username_writes_nothing(db) {
        let store = db.store().await;
        let taken = insert_named(&store, "taken").await;
        let gone = insert_named(&store, "gone.person").await;
        store.delete_person(gone.id, &audit(actions::USER_DELETE, "gone.person", T0)).await.unwrap();
        let id = queued_job(&store, 2).await;
        store.claim_import(&lease("n", "tok", 5), at(0), None).await.unwrap();
        let counts = ImportCounts { rows: 2, processed: 2, created: 2, ..ImportCounts::default() };

        let mut clash = new_person("fresh", "Fresh", "Person");
        clash.email = taken.email.to_uppercase();
        let mut s = step(0, counts);
        s.creates = vec![new_person("other.one", "Other", "One"), clash];
        s.issues = vec![issue(2, "x", Severity::Warning)];
        assert!(matches!(
            store.apply_import_step(id, "tok", &s).await,
            Err(StoreError::Conflict(Conflict::EmailTaken))
        ));

        let mut s = step(0, counts);
        s.creates = vec![new_person("gone.person", "Gone", "Again")];
        assert!(matches!(
            store.apply_import_step(id, "tok", &s).await,
            Err(StoreError::Conflict(Conflict::UsernameReserved))
        ));

        assert!(store.person_by_username("other.one").await.unwrap().is_none());
        assert!(store.import_issues(id, 0, 10).await.unwrap().is_empty());
        assert_eq!(store.import_job(id).await.unwrap().unwrap().counts.processed, 0);
    }

    async fn finishing_forgets_the_file_and_keeps_the_report(db) {
        let store = db.store().await;
        let id = queued_job(&store, 1).await;
        store.claim_import(&lease("n", "tok", 5), at(0), None).await.unwrap();
        let counts = ImportCounts { rows: 1, processed: 1, failed: 1, ..ImportCounts::default() };
        let mut s = step(0, counts);
        s.issues = vec![issue(2, "required", Severity::Error)];
        store.apply_import_step(id, "tok", &s).await.unwrap();
        let finish = AuditRecord {
            at: at(2),
            actor: Some("admin".into()),
            action: actions::IMPORT_FINISH,
            target: None,
            details: json!({ "job": id }).into(),
        };
        assert!(matches!(
            store.finish_import(id, "other", ImportState::Done, None, at(2), &finish).await,
            Err(StoreError::NotFound)
        ));

        let job = store.finish_import(id, "tok", ImportState::Done, None, at(2), &finish).await.unwrap();

        assert_eq!(job.state, ImportState::Done);
        assert_eq!(job.finished_at, Some(at(2)));
        assert_eq!(job.lease_until, None);
        assert_eq!(store.import_chunk(id, 0).await.unwrap(), None);
        assert_eq!(store.import_issues(id, 0, 10).await.unwrap().len(), 1);
        assert!(store.claim_import(&lease("m", "t2", 5), at(100), None).await.unwrap().is_none());
        assert_eq!(audit_total(&store, actions::IMPORT_FINISH).await, 1);
    }

    async fn the_lookup_answers_what_a_batch_needs(db) {
        let store = db.store().await;
        let mut alice = new_person("alice", "Alice", "Liddell");
        alice.memberships = vec![(USERS.into(), "member".into())];
        let alice = insert(&store, alice).await;
        insert_named(&store, "bob").await;
        let gone = insert_named(&store, "gone.person").await;
        store.delete_person(gone.id, &audit(actions::USER_DELETE, "gone.person", T0)).await.unwrap();

        let lookup = store
            .import_lookup(&ImportKeys {
                usernames: vec!["alice".into(), "nobody".into(), "gone.person".into()],
                email_keys: vec!["bob@example.org".into(), "none@example.org".into()],
                groups: vec![USERS.into(), "/spaces/nowhere".into()],
            })
            .await
            .unwrap();

        assert_eq!(lookup.people.len(), 1);
        assert_eq!(lookup.people[0].0, alice);
        assert_eq!(lookup.people[0].1[0].group, USERS);
        assert_eq!(lookup.email_owners.len(), 1);
        assert_eq!(lookup.email_owners[0].0, "bob@example.org");
        assert_eq!(lookup.email_owners[0].2, "bob");
        assert_eq!(lookup.deleted, ["gone.person"]);
        assert_eq!(lookup.groups, [USERS]);
        let empty = store.import_lookup(&ImportKeys::default()).await.unwrap();
        assert!(empty.people.is_empty() && empty.groups.is_empty());
    }
}

/// Applies a step that creates, updates, audits, reports and invites, then checks each.
async fn step_with_every_kind_of_row(store: &SqlStore, prepared: bool) {
    let existing = insert_named(store, "old.timer").await;
    store
        .insert_session(&session("sess", existing.id, at(100)))
        .await
        .unwrap();
    let id = queued_job(store, 3).await;
    store
        .claim_import(&lease("n", "tok", 5), at(0), None)
        .await
        .unwrap();

    let mut created = new_person("new.comer", "New", "Comer");
    created.memberships = vec![(USERS.into(), "member".into())];
    created.password_hash = Some("$argon2id$fake".into());
    created.password_temporary = true;
    created.profile = full_profile();
    let mut update = PersonUpdate::from_person(&existing);
    update.last_name = "Changed".into();
    update.email = "moved@example.org".into();
    update.enabled = false;
    let counts = ImportCounts {
        rows: 3,
        processed: 3,
        created: 1,
        updated: 1,
        failed: 1,
        warnings: 1,
        ..ImportCounts::default()
    };
    let mut s = step(0, counts);
    s.creates = vec![created.clone()];
    s.updates = vec![ImportUpdate {
        id: existing.id,
        username: existing.username.clone(),
        update,
        add_memberships: vec![(USERS.into(), "manager".into())],
        notices: Vec::new(),
        end_sessions: true,
        email_changed: true,
    }];
    s.audits = vec![
        audit(actions::USER_CREATE, "new.comer", at(1)),
        audit(actions::USER_DISABLE, "old.timer", at(1)),
    ];
    s.issues = vec![
        issue(3, "invalid_email", Severity::Error),
        issue(1, "unknown_column", Severity::Warning),
    ];
    s.invites = vec!["new.comer".into()];

    if prepared {
        let creates: Vec<_> = s.creates.iter().collect();
        let updates: Vec<_> = s.updates.iter().collect();
        let audits: Vec<_> = s.audits.iter().collect();
        s.prepared = store.prepare_import_rows(&creates, &updates, &audits);
        assert!(s.prepared.is_some());
    }
    store.apply_import_step(id, "tok", &s).await.unwrap();

    let person = store
        .person_by_username("new.comer")
        .await
        .unwrap()
        .unwrap();
    // Every field lands in its column (PostgreSQL binds one array per column, in order).
    assert_eq!(
        (
            &person.first_name,
            &person.last_name,
            &person.email,
            person.kind,
            person.source
        ),
        (
            &created.first_name,
            &created.last_name,
            &created.email,
            created.kind,
            created.source
        )
    );
    assert_eq!(
        (person.enabled, person.super_user, person.created_at),
        (created.enabled, created.super_user, created.created_at)
    );
    let entry = store
        .audit_entries(&AuditFilter {
            target: Some("new.comer".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .items
        .remove(0);
    let record = &s.audits[0];
    assert_eq!(
        (
            entry.at,
            entry.actor.as_deref(),
            entry.action.as_str(),
            &entry.details
        ),
        (
            record.at,
            record.actor.as_deref(),
            record.action,
            &record.details.to_value()
        )
    );
    assert!(person.password_temporary && person.has_password);
    assert_eq!(person.profile, full_profile());
    assert_eq!(store.memberships(person.id).await.unwrap()[0].group, USERS);
    assert_eq!(
        store.search_people(&q("comer")).await.unwrap().total,
        1,
        "search text is set"
    );
    let old = store.person_by_id(existing.id).await.unwrap().unwrap();
    assert_eq!(
        (old.last_name.as_str(), old.email.as_str(), old.enabled),
        ("Changed", "moved@example.org", false)
    );
    assert_eq!(
        store
            .person_by_email("MOVED@example.org")
            .await
            .unwrap()
            .unwrap()
            .id,
        old.id
    );
    assert_eq!(store.memberships(old.id).await.unwrap()[0].role, "manager");
    assert_eq!(
        rows_of(store, "sessions", old.id).await,
        0,
        "disabling ends sessions"
    );
    assert_eq!(audit_total(store, actions::USER_CREATE).await, 2);
    assert_eq!(audit_total(store, actions::USER_DISABLE).await, 1);
    let job = store.import_job(id).await.unwrap().unwrap();
    assert_eq!(job.counts, counts);
    assert_eq!(job.lease_until, Some(at(30)), "a step extends the lease");
    let report = store.import_issues(id, 0, 10).await.unwrap();
    assert_eq!(report.len(), 2);
    assert_eq!(
        report[0].1,
        issue(3, "invalid_email", Severity::Error),
        "in step order"
    );
    let after_first = store.import_issues(id, report[0].0, 10).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(store.import_invites(id, 10).await.unwrap(), ["new.comer"]);
    store.clear_import_invite(id, "new.comer").await.unwrap();
    assert!(store.import_invites(id, 10).await.unwrap().is_empty());
}
