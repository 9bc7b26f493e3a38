//! People: insert, look up, conflicts, update, delete.

use time::macros::datetime;
use usher_core::audit::{actions, AuditFilter};
use usher_core::groups::{Membership, ADMINISTRATORS, EXTERNALS, USERS};
use usher_core::people::{PersonType, Profile, Source};
use usher_core::store::{Conflict, PasswordChange, PersonUpdate, Store, StoreError};

use crate::support::*;

async fn audit_total(store: &usher_store::SqlStore) -> u64 {
    store
        .audit_entries(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .expect("audit entries")
        .total
}

usher_store::on_both_backends! {
    async fn an_inserted_person_is_returned_with_every_value_given(db) {
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.email = "Jane.Doe@Example.org".into();
        new.password_hash = Some("$argon2id$fake".into());
        new.password_temporary = true;
        new.enabled = false;
        new.kind = PersonType::External;
        new.source = Source::Ldap;
        new.super_user = true;
        new.profile = full_profile();
        new.created_at = at(5);

        let person = insert(&store, new).await;

        assert!(person.id > 0);
        assert_eq!(person.username, "jane.doe");
        assert_eq!(person.first_name, "Jane");
        assert_eq!(person.last_name, "Doe");
        assert_eq!(
            person.email, "Jane.Doe@Example.org",
            "the address is kept as given"
        );
        assert!(!person.enabled);
        assert_eq!(person.kind, PersonType::External);
        assert_eq!(person.source, Source::Ldap);
        assert!(person.super_user);
        assert_eq!(person.created_at, at(5));
        assert_eq!(person.last_login_at, None);
        assert_eq!(person.invited_at, None);
        assert_eq!(person.joined_at, None);
        assert!(person.has_password);
        assert!(person.password_temporary);
        assert_eq!(person.profile, full_profile());
    }

    async fn the_person_an_insert_returns_is_the_one_read_back(db) {
        // The insert builds its answer from what it wrote instead of reading the row again:
        // it must be the same, times kept to the millisecond as stored.
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.password_hash = Some("$argon2id$fake".into());
        new.profile = full_profile();
        new.created_at = at(5) + time::Duration::nanoseconds(123_456_789);

        let person = insert(&store, new).await;

        assert_eq!(person.created_at, at(5) + time::Duration::milliseconds(123));
        assert_eq!(store.person_by_id(person.id).await.unwrap(), Some(person));
    }

    async fn an_insert_grants_every_membership_given_and_audits_once(db) {
        // SQLite writes the memberships and the audit entry in one call: each must land.
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.memberships = vec![
            (USERS.into(), "member".into()),
            (ADMINISTRATORS.into(), "manager".into()),
        ];
        let before = audit_total(&store).await;

        let person = insert(&store, new).await;

        let mut groups: Vec<(String, String)> = store
            .memberships(person.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.group, m.role))
            .collect();
        groups.sort();
        assert_eq!(
            groups,
            [
                (ADMINISTRATORS.to_owned(), "manager".to_owned()),
                (USERS.to_owned(), "member".to_owned())
            ]
        );
        assert_eq!(audit_total(&store).await, before + 1);
    }

    async fn an_inserted_person_is_found_by_id_username_and_email(db) {
        let store = db.store().await;
        let person = insert(&store, new_person("jane.doe", "Jane", "Doe")).await;

        assert_eq!(
            store.person_by_id(person.id).await.unwrap(),
            Some(person.clone())
        );
        assert_eq!(
            store.person_by_username("jane.doe").await.unwrap(),
            Some(person.clone())
        );
        assert_eq!(
            store.person_by_email("jane.doe@example.org").await.unwrap(),
            Some(person)
        );
    }

    async fn email_lookup_ignores_case_on_both_sides(db) {
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.email = "Jane.Doe@Example.ORG".into();
        let person = insert(&store, new).await;

        for address in [
            "jane.doe@example.org",
            "JANE.DOE@EXAMPLE.ORG",
            "Jane.Doe@Example.ORG",
        ] {
            assert_eq!(
                store.person_by_email(address).await.unwrap().map(|p| p.id),
                Some(person.id),
                "{address}"
            );
        }
    }

    async fn username_lookup_is_exact(db) {
        let store = db.store().await;
        insert_named(&store, "jane.doe").await;

        assert_eq!(store.person_by_username("Jane.Doe").await.unwrap(), None);
        assert_eq!(store.person_by_username("jane").await.unwrap(), None);
    }

    async fn unknown_ids_usernames_and_emails_find_nobody(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;

        assert_eq!(store.person_by_id(person.id + 1000).await.unwrap(), None);
        assert_eq!(store.person_by_username("nobody").await.unwrap(), None);
        assert_eq!(
            store.person_by_email("nobody@example.org").await.unwrap(),
            None
        );
        assert_eq!(store.password_hash(person.id + 1000).await.unwrap(), None);
    }

    async fn times_are_kept_to_the_millisecond(db) {
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.created_at = datetime!(2026-03-04 05:06:07.123_456_789 UTC);
        let person = insert(&store, new).await;

        assert_eq!(person.created_at, datetime!(2026-03-04 05:06:07.123 UTC));
        store
            .record_login(person.id, datetime!(2026-03-05 01:02:03.987_654_321 UTC))
            .await
            .unwrap();
        let person = store.person_by_id(person.id).await.unwrap().unwrap();
        assert_eq!(
            person.last_login_at,
            Some(datetime!(2026-03-05 01:02:03.987 UTC))
        );
    }

    async fn the_password_hash_is_returned_only_by_its_own_method(db) {
        let store = db.store().await;
        let mut with = new_person("with", "With", "Password");
        with.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        let with = insert(&store, with).await;
        let without = insert_named(&store, "without").await;

        assert_eq!(
            store.password_hash(with.id).await.unwrap().as_deref(),
            Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
        );
        assert!(with.has_password);
        assert_eq!(store.password_hash(without.id).await.unwrap(), None);
        assert!(!without.has_password);
    }

    async fn an_acting_person_is_read_with_whether_they_administer(db) {
        let store = db.store().await;
        let mut new = new_person("ada.admin", "Ada", "Admin");
        new.memberships = vec![(ADMINISTRATORS.to_owned(), "member".to_owned())];
        let ada = insert(&store, new).await;
        let jane = insert_named(&store, "jane.doe").await;

        let acting = store.acting_person(ada.id).await.unwrap().unwrap();
        assert_eq!((acting.person, acting.admin), (ada, true));
        let acting = store.acting_person(jane.id).await.unwrap().unwrap();
        assert_eq!((acting.person, acting.admin), (jane, false));
        assert_eq!(store.acting_person(i64::MAX).await.unwrap(), None);
    }

    async fn memberships_are_inserted_with_the_person(db) {
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.memberships = vec![
            (USERS.to_owned(), "manager".to_owned()),
            (ADMINISTRATORS.to_owned(), "member".to_owned()),
        ];
        let person = insert(&store, new).await;

        assert_eq!(
            store.memberships(person.id).await.unwrap(),
            vec![
                Membership {
                    role: "member".into(),
                    group: ADMINISTRATORS.into(),
                    group_label: "Administrators".into(),
                },
                Membership {
                    role: "manager".into(),
                    group: USERS.into(),
                    group_label: "Users".into(),
                },
            ],
            "ordered by group path"
        );
        assert!(store.is_member(person.id, USERS).await.unwrap());
        assert!(store.is_member(person.id, ADMINISTRATORS).await.unwrap());
        assert!(!store.is_member(person.id, EXTERNALS).await.unwrap());
        assert!(!store.is_member(person.id, "/no/such/group").await.unwrap());
    }

    async fn a_person_without_memberships_has_none(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;

        assert_eq!(store.memberships(person.id).await.unwrap(), vec![]);
        assert!(!store.is_member(person.id, USERS).await.unwrap());
    }

    async fn an_unknown_group_fails_the_insert_and_leaves_nothing_behind(db) {
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.memberships = vec![
            (USERS.to_owned(), "member".to_owned()),
            ("/no/such/group".to_owned(), "member".to_owned()),
        ];
        let record = audit(actions::USER_CREATE, "jane.doe", T0);

        let error = store.insert_person(&new, &record).await.unwrap_err();

        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        assert_eq!(store.count_people().await.unwrap(), 0);
        assert_eq!(store.person_by_username("jane.doe").await.unwrap(), None);
        assert_eq!(
            audit_total(&store).await,
            0,
            "the audit entry is rolled back too"
        );
        new.memberships.pop();
        store
            .insert_person(&new, &record)
            .await
            .expect("the username is still free");
    }

    async fn a_taken_username_is_a_username_taken_conflict(db) {
        let store = db.store().await;
        insert(&store, new_person("jane.doe", "Jane", "Doe")).await;
        let mut again = new_person("jane.doe", "Janet", "Doe");
        again.email = "other@example.org".into();

        let error = store
            .insert_person(&again, &audit(actions::USER_CREATE, "jane.doe", at(1)))
            .await
            .unwrap_err();

        assert!(
            matches!(error, StoreError::Conflict(Conflict::UsernameTaken)),
            "{error:?}"
        );
        assert_eq!(store.count_people().await.unwrap(), 1);
        assert_eq!(
            audit_total(&store).await,
            1,
            "no entry for the refused insert"
        );
    }

    async fn an_email_differing_only_in_case_is_an_email_taken_conflict(db) {
        let store = db.store().await;
        let mut first = new_person("jane.doe", "Jane", "Doe");
        first.email = "jane@example.org".into();
        insert(&store, first).await;
        let mut second = new_person("jane.other", "Jane", "Other");
        second.email = "JANE@Example.Org".into();

        let error = store
            .insert_person(&second, &audit(actions::USER_CREATE, "jane.other", at(1)))
            .await
            .unwrap_err();

        assert!(
            matches!(error, StoreError::Conflict(Conflict::EmailTaken)),
            "{error:?}"
        );
        assert_eq!(store.count_people().await.unwrap(), 1);
        assert_eq!(
            audit_total(&store).await,
            1,
            "no entry for the refused insert"
        );
    }

    async fn the_username_of_a_deleted_person_stays_reserved(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;
        assert!(!store.username_was_deleted("jane.doe").await.unwrap());

        store
            .delete_person(person.id, &audit(actions::USER_DELETE, "jane.doe", at(1)))
            .await
            .unwrap();

        assert!(store.username_was_deleted("jane.doe").await.unwrap());
        assert!(!store.username_was_deleted("someone.else").await.unwrap());
        let mut again = new_person("jane.doe", "Jane", "Doe");
        again.email = "new.jane@example.org".into();
        let error = store
            .insert_person(&again, &audit(actions::USER_CREATE, "jane.doe", at(2)))
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::Conflict(Conflict::UsernameReserved)),
            "{error:?}"
        );
        assert_eq!(store.count_people().await.unwrap(), 0);
    }

    async fn the_email_of_a_deleted_person_is_free_again(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;
        store
            .delete_person(person.id, &audit(actions::USER_DELETE, "jane.doe", at(1)))
            .await
            .unwrap();

        let mut successor = new_person("jane.successor", "Jane", "Successor");
        successor.email = "jane.doe@example.org".into();
        let successor = insert(&store, successor).await;

        assert_eq!(
            store
                .person_by_email("jane.doe@example.org")
                .await
                .unwrap()
                .map(|p| p.id),
            Some(successor.id)
        );
    }

    async fn the_id_of_a_deleted_person_is_never_given_again(db) {
        let store = db.store().await;
        insert_named(&store, "first").await;
        let last = insert_named(&store, "last").await;
        store
            .delete_person(last.id, &audit(actions::USER_DELETE, "last", at(1)))
            .await
            .unwrap();

        let next = insert_named(&store, "next").await;

        assert!(next.id > last.id, "{} after {}", next.id, last.id);
        assert_eq!(store.person_by_id(last.id).await.unwrap(), None);
    }

    async fn concurrent_inserts_all_succeed(db) {
        let store = db.store().await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let new = new_person(&format!("user{i:02}"), "Con", "Current");
                    let record = audit(actions::USER_CREATE, &new.username, T0);
                    store.insert_person(&new, &record).await
                })
            })
            .collect();

        for task in tasks {
            task.await.expect("task").expect("insert");
        }
        assert_eq!(store.count_people().await.unwrap(), 16);
        assert_eq!(audit_total(&store).await, 16);
    }

    async fn concurrent_inserts_of_one_username_let_exactly_one_win(db) {
        let store = db.store().await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut new = new_person("same", "Con", "Current");
                    new.email = format!("same{i}@example.org");
                    store
                        .insert_person(&new, &audit(actions::USER_CREATE, "same", T0))
                        .await
                })
            })
            .collect();

        let mut won = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => won += 1,
                Err(StoreError::Conflict(Conflict::UsernameTaken)) => {}
                Err(e) => panic!("expected a UsernameTaken conflict, got {e:?}"),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(store.count_people().await.unwrap(), 1);
    }

    async fn update_person_changes_every_changeable_field(db) {
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.password_hash = Some("hash-1".into());
        new.super_user = true;
        new.kind = PersonType::External;
        let person = insert(&store, new).await;
        store.record_login(person.id, at(1)).await.unwrap();

        let update = PersonUpdate {
            first_name: "Janet".into(),
            last_name: "Smith".into(),
            email: "Janet.Smith@Example.org".into(),
            enabled: false,
            profile: full_profile(),
            password: None,
        };
        let updated = store
            .update_person(
                person.id,
                &update,
                &audit(actions::USER_UPDATE, "jane.doe", at(2)),
            )
            .await
            .unwrap();

        assert_eq!(updated.first_name, "Janet");
        assert_eq!(updated.last_name, "Smith");
        assert_eq!(updated.email, "Janet.Smith@Example.org");
        assert!(!updated.enabled);
        assert_eq!(updated.profile, full_profile());
        // What an update does not carry stays.
        assert_eq!(updated.id, person.id);
        assert_eq!(updated.username, "jane.doe");
        assert_eq!(updated.kind, PersonType::External);
        assert!(updated.super_user);
        assert_eq!(updated.created_at, T0);
        assert_eq!(updated.last_login_at, Some(at(1)));
        assert_eq!(
            store.person_by_id(person.id).await.unwrap(),
            Some(updated.clone())
        );
        assert_eq!(
            store
                .person_by_email("janet.smith@example.org")
                .await
                .unwrap(),
            Some(updated)
        );
        assert_eq!(
            store.person_by_email("jane.doe@example.org").await.unwrap(),
            None
        );
    }

    async fn update_person_can_clear_the_profile(db) {
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.profile = full_profile();
        let person = insert(&store, new).await;

        let mut update = PersonUpdate::from_person(&person);
        update.profile = Profile::default();
        let updated = store
            .update_person(
                person.id,
                &update,
                &audit(actions::USER_UPDATE, "jane.doe", at(1)),
            )
            .await
            .unwrap();

        assert_eq!(updated.profile, Profile::default());
    }

    async fn update_person_recomputes_what_search_finds(db) {
        let store = db.store().await;
        let person = insert(&store, new_person("jdoe", "Jane", "Doe")).await;
        assert_eq!(found(&store, &q("doe jane")).await, ["jdoe"]);

        let mut update = PersonUpdate::from_person(&person);
        update.first_name = "Zoë".into();
        update.last_name = "Quintero".into();
        update.email = "zq@mail.test".into();
        store
            .update_person(
                person.id,
                &update,
                &audit(actions::USER_UPDATE, "jdoe", at(1)),
            )
            .await
            .unwrap();

        assert_eq!(found(&store, &q("zoe quintero")).await, ["jdoe"]);
        assert_eq!(found(&store, &q("mail.test")).await, ["jdoe"]);
        assert_eq!(
            found(&store, &q("jdoe")).await,
            ["jdoe"],
            "the username stays searchable"
        );
        assert!(found(&store, &q("jane")).await.is_empty());
        assert!(found(&store, &q("example.org")).await.is_empty());
    }

    async fn update_person_recomputes_the_sort_keys(db) {
        let store = db.store().await;
        let a = insert(&store, new_person("a", "Anna", "Alpha")).await;
        insert(&store, new_person("b", "Bert", "Beta")).await;
        assert_eq!(found(&store, &query(Default::default())).await, ["a", "b"]);

        let mut update = PersonUpdate::from_person(&a);
        update.last_name = "Zulu".into();
        store
            .update_person(a.id, &update, &audit(actions::USER_UPDATE, "a", at(1)))
            .await
            .unwrap();

        assert_eq!(found(&store, &query(Default::default())).await, ["b", "a"]);
    }

    async fn update_person_keeps_the_password_unless_one_is_given(db) {
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.password_hash = Some("hash-1".into());
        new.password_temporary = true;
        let person = insert(&store, new).await;

        let mut update = PersonUpdate::from_person(&person);
        update.first_name = "Janet".into();
        let updated = store
            .update_person(
                person.id,
                &update,
                &audit(actions::USER_UPDATE, "jane.doe", at(1)),
            )
            .await
            .unwrap();

        assert_eq!(
            store.password_hash(person.id).await.unwrap().as_deref(),
            Some("hash-1")
        );
        assert!(updated.has_password);
        assert!(updated.password_temporary, "the temporary flag stays too");
    }

    async fn update_person_sets_a_given_password_and_its_temporary_flag(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;
        assert!(!person.has_password);

        let mut update = PersonUpdate::from_person(&person);
        update.password = Some(PasswordChange {
            hash: "hash-temporary".into(),
            temporary: true,
        });
        let updated = store
            .update_person(
                person.id,
                &update,
                &audit(actions::USER_PASSWORD_SET, "jane.doe", at(1)),
            )
            .await
            .unwrap();
        assert!(updated.has_password);
        assert!(updated.password_temporary);
        assert_eq!(
            store.password_hash(person.id).await.unwrap().as_deref(),
            Some("hash-temporary")
        );

        update.password = Some(PasswordChange {
            hash: "hash-own".into(),
            temporary: false,
        });
        let updated = store
            .update_person(
                person.id,
                &update,
                &audit(actions::USER_PASSWORD_SET, "jane.doe", at(2)),
            )
            .await
            .unwrap();
        assert!(updated.has_password);
        assert!(!updated.password_temporary);
        assert_eq!(
            store.password_hash(person.id).await.unwrap().as_deref(),
            Some("hash-own")
        );
    }

    async fn update_person_may_change_the_case_of_its_own_email(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;

        let mut update = PersonUpdate::from_person(&person);
        update.email = "JANE.DOE@example.org".into();
        let updated = store
            .update_person(
                person.id,
                &update,
                &audit(actions::USER_UPDATE, "jane.doe", at(1)),
            )
            .await
            .unwrap();

        assert_eq!(updated.email, "JANE.DOE@example.org");
    }

    async fn updating_to_the_email_of_another_person_is_an_email_taken_conflict(db) {
        let store = db.store().await;
        insert_named(&store, "john.roe").await;
        let person = insert_named(&store, "jane.doe").await;

        let mut update = PersonUpdate::from_person(&person);
        update.first_name = "Janet".into();
        update.email = "John.Roe@EXAMPLE.org".into();
        let error = store
            .update_person(
                person.id,
                &update,
                &audit(actions::USER_UPDATE, "jane.doe", at(1)),
            )
            .await
            .unwrap_err();

        assert!(
            matches!(error, StoreError::Conflict(Conflict::EmailTaken)),
            "{error:?}"
        );
        assert_eq!(
            store.person_by_id(person.id).await.unwrap(),
            Some(person),
            "unchanged"
        );
        assert_eq!(audit_total(&store).await, 2, "only the two inserts");
    }

    async fn updating_a_missing_person_is_not_found(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;
        store
            .delete_person(person.id, &audit(actions::USER_DELETE, "jane.doe", at(1)))
            .await
            .unwrap();

        let error = store
            .update_person(
                person.id,
                &PersonUpdate::from_person(&person),
                &audit(actions::USER_UPDATE, "jane.doe", at(2)),
            )
            .await
            .unwrap_err();

        assert!(matches!(error, StoreError::NotFound), "{error:?}");
        assert_eq!(
            audit_total(&store).await,
            2,
            "the insert and the delete only"
        );
    }

    async fn delete_person_removes_the_person_with_their_sessions_tokens_and_memberships(db) {
        let store = db.store().await;
        let mut new = new_person("jane.doe", "Jane", "Doe");
        new.memberships = vec![(USERS.to_owned(), "member".to_owned())];
        let person = insert(&store, new).await;
        let mut other = new_person("john.roe", "John", "Roe");
        other.memberships = vec![(USERS.to_owned(), "member".to_owned())];
        let other = insert(&store, other).await;
        for (hash, owner) in [("s1", person.id), ("s2", person.id), ("s3", other.id)] {
            store
                .insert_session(&session(hash, owner, at(60)))
                .await
                .unwrap();
        }
        for (hash, owner) in [("t1", person.id), ("t2", other.id)] {
            store
                .insert_api_token(owner, "ci", hash, &audit(actions::TOKEN_CREATE, "x", at(1)))
                .await
                .unwrap();
        }

        store
            .delete_person(person.id, &audit(actions::USER_DELETE, "jane.doe", at(2)))
            .await
            .unwrap();

        assert_eq!(store.person_by_id(person.id).await.unwrap(), None);
        assert_eq!(store.person_by_username("jane.doe").await.unwrap(), None);
        assert_eq!(
            store.person_by_email("jane.doe@example.org").await.unwrap(),
            None
        );
        assert_eq!(store.password_hash(person.id).await.unwrap(), None);
        assert_eq!(store.count_people().await.unwrap(), 1);
        assert_eq!(store.session("s1", at(3)).await.unwrap(), None);
        assert_eq!(store.session("s2", at(3)).await.unwrap(), None);
        assert_eq!(store.api_token_owner("t1", at(3)).await.unwrap().map(|h| h.person.id), None);
        assert_eq!(store.memberships(person.id).await.unwrap(), vec![]);
        assert!(!store.is_member(person.id, USERS).await.unwrap());
        for table in ["sessions", "api_tokens", "memberships"] {
            assert_eq!(rows_of(&store, table, person.id).await, 0, "{table}");
        }
        // The other person keeps everything.
        assert!(store.session("s3", at(3)).await.unwrap().is_some());
        assert_eq!(
            store.api_token_owner("t2", at(3)).await.unwrap().map(|h| h.person.id),
            Some(other.id)
        );
        assert!(store.is_member(other.id, USERS).await.unwrap());
    }

    async fn deleting_a_missing_person_is_not_found(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;

        let error = store
            .delete_person(
                person.id + 1000,
                &audit(actions::USER_DELETE, "ghost", at(1)),
            )
            .await
            .unwrap_err();

        assert!(matches!(error, StoreError::NotFound), "{error:?}");
        assert_eq!(store.count_people().await.unwrap(), 1);
        assert_eq!(
            audit_total(&store).await,
            1,
            "no entry for the refused delete"
        );
        store
            .delete_person(person.id, &audit(actions::USER_DELETE, "jane.doe", at(2)))
            .await
            .unwrap();
        let error = store
            .delete_person(person.id, &audit(actions::USER_DELETE, "jane.doe", at(3)))
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::NotFound),
            "deleted twice: {error:?}"
        );
    }

    async fn record_login_sets_the_last_login_time(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;
        assert_eq!(person.last_login_at, None);

        store.record_login(person.id, at(10)).await.unwrap();
        let person = store.person_by_id(person.id).await.unwrap().unwrap();
        assert_eq!(person.last_login_at, Some(at(10)));

        store.record_login(person.id, at(20)).await.unwrap();
        let person = store.person_by_id(person.id).await.unwrap().unwrap();
        assert_eq!(person.last_login_at, Some(at(20)));
    }

    async fn count_people_counts_inserts_and_deletes(db) {
        let store = db.store().await;
        assert_eq!(store.count_people().await.unwrap(), 0);
        let a = insert_named(&store, "a").await;
        insert_named(&store, "b").await;
        insert_named(&store, "c").await;
        assert_eq!(store.count_people().await.unwrap(), 3);

        store
            .delete_person(a.id, &audit(actions::USER_DELETE, "a", at(1)))
            .await
            .unwrap();
        assert_eq!(store.count_people().await.unwrap(), 2);
    }

    async fn ping_answers(db) {
        let store = db.store().await;
        store.ping().await.unwrap();
    }
}

usher_store::on_both_backends! {
    async fn identity_in_use_tells_reserved_taken_and_email_apart(db) {
        let store = db.store().await;
        let free = store.identity_in_use("new.one", "new.one@example.org").await.unwrap();
        assert_eq!(free, usher_core::store::IdentityInUse::default());

        let jane = insert_named(&store, "jane.doe").await;
        let taken = store.identity_in_use("jane.doe", "JANE.DOE@Example.org").await.unwrap();
        assert!(taken.username_taken && taken.email_taken && !taken.username_reserved);

        store
            .delete_person(jane.id, &audit(actions::USER_DELETE, "jane.doe", at(1)))
            .await
            .unwrap();
        let reserved = store.identity_in_use("jane.doe", "jane.doe@example.org").await.unwrap();
        assert!(reserved.username_reserved && !reserved.username_taken && !reserved.email_taken);
    }
}
