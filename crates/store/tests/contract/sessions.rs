//! Sessions, API tokens and login failures.

use usher_core::audit::actions;
use usher_core::clock::to_millis;
use usher_core::groups::ADMINISTRATORS;
use usher_core::store::{ActingPerson, LoginFailures, Store, StoreError};

use crate::support::*;

usher_store::on_both_backends! {
    async fn an_inserted_session_is_found_until_it_expires(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;
        let record = session("hash-1", person.id, at(60));
        store.insert_session(&record).await.unwrap();

        assert_eq!(
            store.session("hash-1", T0).await.unwrap(),
            Some(record.clone())
        );
        assert_eq!(store.session("hash-1", at(59)).await.unwrap(), Some(record));
        assert_eq!(
            store.session("hash-1", at(60)).await.unwrap(),
            None,
            "expired at its expiry"
        );
        assert_eq!(store.session("hash-1", at(61)).await.unwrap(), None);
    }

    async fn an_unknown_session_is_not_found(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;
        store
            .insert_session(&session("hash-1", person.id, at(60)))
            .await
            .unwrap();

        assert_eq!(store.session("hash-2", T0).await.unwrap(), None);
        assert_eq!(store.session("HASH-1", T0).await.unwrap(), None);
    }

    async fn a_session_of_an_unknown_person_is_refused(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;

        let error = store
            .insert_session(&session("hash-1", person.id + 1000, at(60)))
            .await
            .unwrap_err();

        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        assert_eq!(store.session("hash-1", T0).await.unwrap(), None);
    }

    async fn delete_session_ends_only_that_session(db) {
        let store = db.store().await;
        let person = insert_named(&store, "jane.doe").await;
        store
            .insert_session(&session("hash-1", person.id, at(60)))
            .await
            .unwrap();
        store
            .insert_session(&session("hash-2", person.id, at(60)))
            .await
            .unwrap();

        store.delete_session("hash-1").await.unwrap();

        assert_eq!(store.session("hash-1", T0).await.unwrap(), None);
        assert!(store.session("hash-2", T0).await.unwrap().is_some());
        store
            .delete_session("hash-1")
            .await
            .expect("deleting twice is harmless");
        store
            .delete_session("never-existed")
            .await
            .expect("so is an unknown hash");
    }

    async fn delete_sessions_of_ends_every_session_of_the_person_but_the_one_given(db) {
        let store = db.store().await;
        let jane = insert_named(&store, "jane.doe").await;
        let john = insert_named(&store, "john.roe").await;
        for hash in ["j1", "j2", "j3"] {
            store
                .insert_session(&session(hash, jane.id, at(60)))
                .await
                .unwrap();
        }
        store
            .insert_session(&session("other", john.id, at(60)))
            .await
            .unwrap();

        assert_eq!(
            store.delete_sessions_of(jane.id, Some("j2")).await.unwrap(),
            2
        );

        assert_eq!(store.session("j1", T0).await.unwrap(), None);
        assert!(
            store.session("j2", T0).await.unwrap().is_some(),
            "the one kept"
        );
        assert_eq!(store.session("j3", T0).await.unwrap(), None);
        assert!(
            store.session("other", T0).await.unwrap().is_some(),
            "another person's"
        );
    }

    async fn delete_sessions_of_without_exception_ends_them_all(db) {
        let store = db.store().await;
        let jane = insert_named(&store, "jane.doe").await;
        let john = insert_named(&store, "john.roe").await;
        for hash in ["j1", "j2"] {
            store
                .insert_session(&session(hash, jane.id, at(60)))
                .await
                .unwrap();
        }
        store
            .insert_session(&session("other", john.id, at(60)))
            .await
            .unwrap();

        assert_eq!(store.delete_sessions_of(jane.id, None).await.unwrap(), 2);
        assert_eq!(store.delete_sessions_of(jane.id, None).await.unwrap(), 0);

        assert_eq!(store.session("j1", T0).await.unwrap(), None);
        assert_eq!(store.session("j2", T0).await.unwrap(), None);
        assert!(store.session("other", T0).await.unwrap().is_some());
    }

    async fn delete_sessions_of_with_another_persons_session_as_exception_ends_them_all(db) {
        let store = db.store().await;
        let jane = insert_named(&store, "jane.doe").await;
        let john = insert_named(&store, "john.roe").await;
        store
            .insert_session(&session("j1", jane.id, at(60)))
            .await
            .unwrap();
        store
            .insert_session(&session("other", john.id, at(60)))
            .await
            .unwrap();

        assert_eq!(
            store
                .delete_sessions_of(jane.id, Some("other"))
                .await
                .unwrap(),
            1
        );
        assert!(store.session("other", T0).await.unwrap().is_some());
    }

    async fn an_api_token_leads_to_its_owner_and_records_its_use(db) {
        let store = db.store().await;
        let jane = insert_named(&store, "jane.doe").await;
        let john = insert_named(&store, "john.roe").await;
        store
            .insert_api_token(
                jane.id,
                "ci",
                "token-jane",
                &audit(actions::TOKEN_CREATE, "jane.doe", at(1)),
            )
            .await
            .unwrap();
        store
            .insert_api_token(
                john.id,
                "ci",
                "token-john",
                &audit(actions::TOKEN_CREATE, "john.roe", at(1)),
            )
            .await
            .unwrap();
        assert_eq!(token_last_used_at(&store, "token-jane").await, None);

        assert_eq!(
            store.api_token_owner("token-jane", at(5)).await.unwrap().map(|h| h.person.id),
            Some(jane.id)
        );
        assert_eq!(
            token_last_used_at(&store, "token-jane").await,
            Some(to_millis(at(5)))
        );
        assert_eq!(
            store.api_token_owner("token-jane", at(9)).await.unwrap().map(|h| h.person.id),
            Some(jane.id)
        );
        assert_eq!(
            token_last_used_at(&store, "token-jane").await,
            Some(to_millis(at(9)))
        );
        // Within the minute, the recorded use stays: reads need not write.
        store
            .api_token_owner("token-jane", at(9) + time::Duration::seconds(30))
            .await
            .unwrap().map(|h| h.person.id);
        assert_eq!(
            token_last_used_at(&store, "token-jane").await,
            Some(to_millis(at(9)))
        );

        assert_eq!(
            store.api_token_owner("token-john", at(6)).await.unwrap().map(|h| h.person.id),
            Some(john.id)
        );
    }

    async fn an_api_token_says_whether_its_owner_administers(db) {
        let store = db.store().await;
        let mut new = new_person("ada.admin", "Ada", "Admin");
        new.memberships
            .push((ADMINISTRATORS.to_owned(), "member".to_owned()));
        let ada = insert(&store, new).await;
        let jane = insert_named(&store, "jane.doe").await;
        for (person, token) in [(&ada, "token-ada"), (&jane, "token-jane")] {
            store
                .insert_api_token(
                    person.id,
                    "ci",
                    token,
                    &audit(actions::TOKEN_CREATE, &person.username, at(1)),
                )
                .await
                .unwrap();
        }

        let holder = store.api_token_owner("token-ada", at(2)).await.unwrap();
        assert_eq!(
            holder,
            Some(ActingPerson {
                person: store.person_by_id(ada.id).await.unwrap().unwrap(),
                admin: true,
            })
        );
        let holder = store.api_token_owner("token-jane", at(2)).await.unwrap();
        assert_eq!(holder.map(|h| (h.person.username, h.admin)), Some(("jane.doe".to_owned(), false)));
    }

    async fn an_unknown_api_token_has_no_owner(db) {
        let store = db.store().await;
        let jane = insert_named(&store, "jane.doe").await;
        store
            .insert_api_token(
                jane.id,
                "ci",
                "token-jane",
                &audit(actions::TOKEN_CREATE, "jane.doe", at(1)),
            )
            .await
            .unwrap();

        assert_eq!(
            store.api_token_owner("token-unknown", at(5)).await.unwrap().map(|h| h.person.id),
            None
        );
        assert_eq!(
            store.api_token_owner("TOKEN-JANE", at(5)).await.unwrap().map(|h| h.person.id),
            None
        );
    }

    async fn an_api_token_hash_cannot_be_inserted_twice(db) {
        let store = db.store().await;
        let jane = insert_named(&store, "jane.doe").await;
        let record = audit(actions::TOKEN_CREATE, "jane.doe", at(1));
        store
            .insert_api_token(jane.id, "ci", "token", &record)
            .await
            .unwrap();

        assert!(store
            .insert_api_token(jane.id, "other", "token", &record)
            .await
            .is_err());
        assert_eq!(rows_of(&store, "api_tokens", jane.id).await, 1);
    }

    async fn login_failures_count_up_per_key_until_cleared(db) {
        let store = db.store().await;
        assert_eq!(store.login_failures("jane.doe").await.unwrap(), None);

        assert_eq!(
            store.record_login_failure("jane.doe", at(1)).await.unwrap(),
            1
        );
        assert_eq!(
            store.record_login_failure("jane.doe", at(2)).await.unwrap(),
            2
        );
        assert_eq!(store.record_login_failure("other", at(2)).await.unwrap(), 1);
        assert_eq!(
            store.record_login_failure("jane.doe", at(3)).await.unwrap(),
            3
        );

        assert_eq!(
            store.login_failures("jane.doe").await.unwrap(),
            Some(LoginFailures {
                count: 3,
                last_at: at(3)
            })
        );
        assert_eq!(
            store.login_failures("other").await.unwrap(),
            Some(LoginFailures {
                count: 1,
                last_at: at(2)
            })
        );

        store.clear_login_failures("jane.doe").await.unwrap();

        assert_eq!(store.login_failures("jane.doe").await.unwrap(), None);
        assert_eq!(
            store
                .login_failures("other")
                .await
                .unwrap()
                .map(|f| f.count),
            Some(1)
        );
        assert_eq!(
            store.record_login_failure("jane.doe", at(4)).await.unwrap(),
            1
        );
        store
            .clear_login_failures("never-failed")
            .await
            .expect("clearing nothing is harmless");
    }

    async fn concurrent_login_failures_are_all_counted(db) {
        let store = db.store().await;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.record_login_failure("jane.doe", at(i)).await })
            })
            .collect();

        let mut counts = Vec::new();
        for task in tasks {
            counts.push(task.await.expect("task").expect("record"));
        }
        counts.sort_unstable();
        assert_eq!(
            counts,
            (1..=20).collect::<Vec<u32>>(),
            "each failure saw its own count"
        );
        assert_eq!(
            store
                .login_failures("jane.doe")
                .await
                .unwrap()
                .map(|f| f.count),
            Some(20)
        );
    }

    async fn login_failure_keys_are_exact(db) {
        let store = db.store().await;
        store.record_login_failure("Jane.Doe", at(1)).await.unwrap();

        assert_eq!(store.login_failures("jane.doe").await.unwrap(), None);
        assert_eq!(
            store
                .login_failures("Jane.Doe")
                .await
                .unwrap()
                .map(|f| f.count),
            Some(1)
        );
    }
}
