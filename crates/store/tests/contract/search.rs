//! `search_people`: text, filters, sorting and paging, with exact totals.

use usher_core::people::{Enrollment, PersonType, Source};
use usher_core::query::{EnrollmentFilter, Sort, SortColumn, UserFilter, UserQuery};
use usher_core::store::Store;
use usher_store::SqlStore;

use crate::support::*;

/// Usernames matching `filter`, sorted by username.
async fn filtered(store: &SqlStore, filter: UserFilter) -> Vec<String> {
    let mut query = query(filter);
    query.sort = Sort {
        column: SortColumn::Username,
        descending: false,
    };
    found(store, &query).await
}

async fn sorted(store: &SqlStore, column: SortColumn, descending: bool) -> Vec<String> {
    let mut query = query(UserFilter::default());
    query.sort = Sort { column, descending };
    found(store, &query).await
}

/// One person in each situation the status filters tell apart:
///
/// | username    | enabled | connected | invited | kind     | source   | enrollment   |
/// |-------------|---------|-----------|---------|----------|----------|--------------|
/// | `invite`    | yes     | no        | no      | internal | internal | Invite       |
/// | `reinvite`  | yes     | no        | yes     | internal | internal | Reinvite     |
/// | `accepted`  | yes     | yes       | yes     | internal | internal | Accepted     |
/// | `connected` | yes     | yes       | no      | internal | internal | Connected    |
/// | `external`  | yes     | no        | no      | external | internal | NotPossible  |
/// | `ldap`      | yes     | yes       | no      | internal | ldap     | NotPossible  |
/// | `disabled`  | no      | no        | no      | internal | internal | Invite       |
async fn cast(store: &SqlStore) {
    insert(store, new_person("invite", "Ina", "Vite")).await;
    let reinvite = insert(store, new_person("reinvite", "Rei", "Vite")).await;
    set_invited_at(store, reinvite.id, at(1)).await;
    let accepted = insert(store, new_person("accepted", "Acc", "Epted")).await;
    set_invited_at(store, accepted.id, at(1)).await;
    store.record_login(accepted.id, at(2)).await.unwrap();
    let connected = insert(store, new_person("connected", "Con", "Nected")).await;
    store.record_login(connected.id, at(3)).await.unwrap();
    let mut external = new_person("external", "Ext", "Ernal");
    external.kind = PersonType::External;
    insert(store, external).await;
    let mut ldap = new_person("ldap", "Lda", "Directory");
    ldap.source = Source::Ldap;
    let ldap = insert(store, ldap).await;
    store.record_login(ldap.id, at(4)).await.unwrap();
    let mut disabled = new_person("disabled", "Dis", "Abled");
    disabled.enabled = false;
    insert(store, disabled).await;
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

usher_store::on_both_backends! {
    async fn an_empty_query_finds_everyone_by_last_name(db) {
        let store = db.store().await;
        insert(&store, new_person("c", "Carla", "Zimmer")).await;
        insert(&store, new_person("a", "Anna", "Meier")).await;
        insert(&store, new_person("b", "Bea", "Albrecht")).await;

        let page = store.search_people(&UserQuery::default()).await.unwrap();

        assert_eq!(usernames(&page), ["b", "a", "c"]);
        assert_eq!(page.total, 3);
    }

    async fn an_empty_store_finds_nobody(db) {
        let store = db.store().await;

        let page = store.search_people(&q("anyone")).await.unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.total, 0);
        let page = store.search_people(&UserQuery::default()).await.unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.total, 0);
    }

    async fn q_matches_text_contained_in_username_names_or_email(db) {
        let store = db.store().await;
        let mut new = new_person("jdoe", "Jane", "Doe");
        new.email = "jane@corp.test".into();
        insert(&store, new).await;
        insert(&store, new_person("rroe", "Richard", "Roe")).await;

        assert_eq!(found(&store, &q("jdo")).await, ["jdoe"], "username prefix");
        assert_eq!(
            found(&store, &q("ane")).await,
            ["jdoe"],
            "inside the first name"
        );
        assert_eq!(
            found(&store, &q("oe")).await,
            ["jdoe", "rroe"],
            "both last names"
        );
        assert_eq!(
            found(&store, &q("corp.test")).await,
            ["jdoe"],
            "email domain"
        );
        assert_eq!(found(&store, &q("chard")).await, ["rroe"]);
        assert!(found(&store, &q("nobody")).await.is_empty());
    }

    async fn q_ignores_case_and_accents(db) {
        let store = db.store().await;
        insert(&store, new_person("enaf", "Élodie", "Näf")).await;
        insert(&store, new_person("emartin", "Eloïse", "Martin")).await;
        insert(&store, new_person("mdubois", "Marc", "Dubois")).await;

        assert_eq!(found(&store, &q("elo")).await, ["emartin", "enaf"]);
        assert_eq!(found(&store, &q("NAF")).await, ["enaf"]);
        assert_eq!(found(&store, &q("lodie")).await, ["enaf"]);
        assert_eq!(found(&store, &q("ÉLO")).await, ["emartin", "enaf"]);
        assert_eq!(found(&store, &q("näf")).await, ["enaf"]);
        assert_eq!(found(&store, &q("eloise")).await, ["emartin"]);
        assert_eq!(found(&store, &q("DUBOÎS")).await, ["mdubois"]);
    }

    async fn every_word_of_q_must_match_in_any_order(db) {
        let store = db.store().await;
        insert(&store, new_person("enaf", "Élodie", "Näf")).await;
        insert(&store, new_person("emartin", "Eloïse", "Martin")).await;
        insert(&store, new_person("mdubois", "Marc", "Dubois")).await;

        assert_eq!(found(&store, &q("elo naf")).await, ["enaf"]);
        assert_eq!(found(&store, &q("  naf   ELO ")).await, ["enaf"]);
        assert_eq!(found(&store, &q("mar elo")).await, ["emartin"]);
        assert!(found(&store, &q("elo dubois")).await.is_empty());
    }

    async fn a_blank_q_matches_everyone(db) {
        let store = db.store().await;
        insert_named(&store, "a").await;
        insert_named(&store, "b").await;

        assert_eq!(found(&store, &q("")).await.len(), 2);
        assert_eq!(found(&store, &q("   ")).await.len(), 2);
    }

    async fn like_wildcards_in_q_are_literal(db) {
        let store = db.store().await;
        insert(&store, new_person("pct", "Deal", "50% Off")).await;
        insert(&store, new_person("five", "Deal", "500 Off")).await;
        insert(&store, new_person("under", "a_b", "Name")).await;
        insert(&store, new_person("xname", "axb", "Name")).await;
        insert(&store, new_person("plain", "ab", "Name")).await;
        insert(&store, new_person("slash", "a\\b", "Name")).await;

        assert_eq!(found(&store, &q("50%")).await, ["pct"]);
        assert_eq!(found(&store, &q("%")).await, ["pct"]);
        assert_eq!(found(&store, &q("a_b")).await, ["under"]);
        assert_eq!(found(&store, &q("_")).await, ["under"]);
        assert_eq!(found(&store, &q("a\\b")).await, ["slash"]);
        assert_eq!(found(&store, &q("\\")).await, ["slash"]);
        assert_eq!(found(&store, &q("500")).await, ["five"]);
    }

    async fn the_enabled_filter_selects_by_status(db) {
        let store = db.store().await;
        cast(&store).await;

        let enabled = UserFilter {
            enabled: Some(true),
            ..Default::default()
        };
        let disabled = UserFilter {
            enabled: Some(false),
            ..Default::default()
        };
        assert_eq!(
            filtered(&store, enabled).await,
            [
                "accepted",
                "connected",
                "external",
                "invite",
                "ldap",
                "reinvite"
            ]
        );
        assert_eq!(filtered(&store, disabled).await, ["disabled"]);
    }

    async fn the_connected_filter_selects_by_last_login(db) {
        let store = db.store().await;
        cast(&store).await;

        let connected = UserFilter {
            connected: Some(true),
            ..Default::default()
        };
        let never = UserFilter {
            connected: Some(false),
            ..Default::default()
        };
        assert_eq!(
            filtered(&store, connected).await,
            ["accepted", "connected", "ldap"]
        );
        assert_eq!(
            filtered(&store, never).await,
            ["disabled", "external", "invite", "reinvite"]
        );
    }

    async fn the_enrollment_filter_selects_enrolled_never_enrolled_and_not_possible(db) {
        let store = db.store().await;
        cast(&store).await;

        let by = |e| UserFilter {
            enrollment: Some(e),
            ..Default::default()
        };
        assert_eq!(
            filtered(&store, by(EnrollmentFilter::Enrolled)).await,
            ["accepted", "reinvite"]
        );
        assert_eq!(
            filtered(&store, by(EnrollmentFilter::NeverEnrolled)).await,
            ["disabled", "invite"]
        );
        assert_eq!(
            filtered(&store, by(EnrollmentFilter::NotPossible)).await,
            ["connected", "external", "ldap"]
        );
    }

    async fn the_enrollment_filter_agrees_with_each_persons_enrollment(db) {
        let store = db.store().await;
        cast(&store).await;
        let everyone = store
            .search_people(&query(UserFilter::default()))
            .await
            .unwrap();
        assert_eq!(everyone.total, 7);

        for (filter, statuses) in [
            (
                EnrollmentFilter::Enrolled,
                &[Enrollment::Reinvite, Enrollment::Accepted][..],
            ),
            (EnrollmentFilter::NeverEnrolled, &[Enrollment::Invite][..]),
            (
                EnrollmentFilter::NotPossible,
                &[Enrollment::Connected, Enrollment::NotPossible][..],
            ),
        ] {
            let mut expected: Vec<String> = everyone
                .items
                .iter()
                .filter(|p| statuses.contains(&p.enrollment()))
                .map(|p| p.username.clone())
                .collect();
            expected.sort();
            let filter_value = UserFilter {
                enrollment: Some(filter),
                ..Default::default()
            };
            assert_eq!(filtered(&store, filter_value).await, expected, "{filter:?}");
        }
    }

    async fn the_kind_filter_selects_internal_or_external_people(db) {
        let store = db.store().await;
        cast(&store).await;

        let external = UserFilter {
            kind: Some(PersonType::External),
            ..Default::default()
        };
        let internal = UserFilter {
            kind: Some(PersonType::Internal),
            ..Default::default()
        };
        assert_eq!(filtered(&store, external).await, ["external"]);
        assert_eq!(
            filtered(&store, internal).await,
            [
                "accepted",
                "connected",
                "disabled",
                "invite",
                "ldap",
                "reinvite"
            ]
        );
    }

    async fn the_source_filter_selects_internal_or_ldap_people(db) {
        let store = db.store().await;
        cast(&store).await;

        let ldap = UserFilter {
            source: Some(Source::Ldap),
            ..Default::default()
        };
        let internal = UserFilter {
            source: Some(Source::Internal),
            ..Default::default()
        };
        assert_eq!(filtered(&store, ldap).await, ["ldap"]);
        assert_eq!(
            filtered(&store, internal).await,
            [
                "accepted",
                "connected",
                "disabled",
                "external",
                "invite",
                "reinvite"
            ]
        );
    }

    async fn filters_combine_with_each_other_and_with_q(db) {
        let store = db.store().await;
        cast(&store).await;

        let f = UserFilter {
            enabled: Some(true),
            connected: Some(false),
            ..Default::default()
        };
        assert_eq!(
            filtered(&store, f.clone()).await,
            ["external", "invite", "reinvite"]
        );

        let f = UserFilter {
            kind: Some(PersonType::Internal),
            ..f
        };
        assert_eq!(filtered(&store, f.clone()).await, ["invite", "reinvite"]);

        let f = UserFilter {
            q: Some("VITE".into()),
            ..f
        };
        assert_eq!(filtered(&store, f.clone()).await, ["invite", "reinvite"]);

        let f = UserFilter {
            enrollment: Some(EnrollmentFilter::Enrolled),
            ..f
        };
        assert_eq!(filtered(&store, f.clone()).await, ["reinvite"]);

        let f = UserFilter {
            source: Some(Source::Ldap),
            ..f
        };
        assert!(filtered(&store, f).await.is_empty());

        let f = UserFilter {
            enabled: Some(false),
            enrollment: Some(EnrollmentFilter::NeverEnrolled),
            kind: Some(PersonType::Internal),
            source: Some(Source::Internal),
            connected: Some(false),
            q: Some("abled".into()),
        };
        assert_eq!(filtered(&store, f).await, ["disabled"]);

        let f = UserFilter {
            connected: Some(true),
            enrollment: Some(EnrollmentFilter::NotPossible),
            ..Default::default()
        };
        assert_eq!(filtered(&store, f).await, ["connected", "ldap"]);
    }

    async fn a_filtered_total_counts_every_match_not_just_the_page(db) {
        let store = db.store().await;
        cast(&store).await;

        let mut query = query(UserFilter {
            enabled: Some(true),
            ..Default::default()
        });
        query.limit = 2;
        let page = store.search_people(&query).await.unwrap();

        assert_eq!(page.items.len(), 2);
        assert_eq!(page.total, 6);
    }

    async fn people_sort_by_every_column_in_both_directions(db) {
        let store = db.store().await;
        // Ties on every column but the username, accents and case where folding matters, and
        // people who never logged in.
        let sorting_cast = [
            // username, first name, last name, email, created, last login
            ("alice", "bob", "Åberg", "ms.alice@x.test", 1, None),
            ("bob", "Zoë", "martin", "Able.bob@x.test", 2, Some(5)),
            ("carol", "Émile", "Zeta", "ZZ.carol@x.test", 3, Some(10)),
            ("dave", "Émile", "Martin", "lo.dave@x.test", 2, None),
        ];
        for (username, first, last, email, created, login) in sorting_cast {
            let mut new = new_person(username, first, last);
            new.email = email.into();
            new.created_at = at(created);
            let person = insert(&store, new).await;
            if let Some(minutes) = login {
                store.record_login(person.id, at(minutes)).await.unwrap();
            }
        }

        for (column, ascending) in [
            (SortColumn::Username, ["alice", "bob", "carol", "dave"]),
            (SortColumn::FirstName, ["alice", "carol", "dave", "bob"]),
            (SortColumn::LastName, ["alice", "bob", "dave", "carol"]),
            (SortColumn::Email, ["bob", "dave", "alice", "carol"]),
            (SortColumn::CreatedAt, ["alice", "bob", "dave", "carol"]),
        ] {
            let mut descending = ascending;
            descending.reverse();
            assert_eq!(sorted(&store, column, false).await, ascending, "{column:?}");
            assert_eq!(
                sorted(&store, column, true).await,
                descending,
                "-{column:?}"
            );
        }
    }

    async fn people_who_never_logged_in_sort_last_in_both_directions(db) {
        let store = db.store().await;
        for (username, login) in [
            ("a", None),
            ("b", Some(5)),
            ("c", Some(10)),
            ("d", None),
            ("e", Some(7)),
        ] {
            let person = insert_named(&store, username).await;
            if let Some(minutes) = login {
                store.record_login(person.id, at(minutes)).await.unwrap();
            }
        }

        assert_eq!(
            sorted(&store, SortColumn::LastLoginAt, false).await,
            ["b", "e", "c", "a", "d"]
        );
        assert_eq!(
            sorted(&store, SortColumn::LastLoginAt, true).await,
            ["c", "e", "b", "d", "a"],
            "latest first, then the others, ties by username in the same direction"
        );
    }

    async fn ties_are_broken_by_username_so_that_pages_never_overlap(db) {
        let store = db.store().await;
        for i in [3, 0, 4, 1, 2] {
            insert(&store, new_person(&format!("user{i}"), "Same", "Name")).await;
        }

        for column in [
            SortColumn::FirstName,
            SortColumn::LastName,
            SortColumn::CreatedAt,
        ] {
            for descending in [false, true] {
                let mut seen = Vec::new();
                for offset in (0..5).step_by(2) {
                    let query = UserQuery {
                        sort: Sort { column, descending },
                        limit: 2,
                        offset,
                        ..UserQuery::default()
                    };
                    let page = store.search_people(&query).await.unwrap();
                    assert_eq!(page.total, 5);
                    seen.extend(page.items.into_iter().map(|p| p.username));
                }
                let mut expected = strings(&["user0", "user1", "user2", "user3", "user4"]);
                if descending {
                    expected.reverse();
                }
                assert_eq!(seen, expected, "{column:?} descending={descending}");
            }
        }
    }

    async fn pages_cover_the_results_exactly_once_with_the_exact_total(db) {
        let store = db.store().await;
        for i in 0..25 {
            insert_named(&store, &format!("user{i:02}")).await;
        }
        let all = sorted(&store, SortColumn::Username, false).await;
        assert_eq!(all.len(), 25);

        let mut seen = Vec::new();
        for (offset, size) in [(0, 10), (10, 10), (20, 5)] {
            let query = UserQuery {
                sort: Sort {
                    column: SortColumn::Username,
                    descending: false,
                },
                limit: 10,
                offset,
                ..UserQuery::default()
            };
            let page = store.search_people(&query).await.unwrap();
            assert_eq!(page.items.len(), size, "offset {offset}");
            assert_eq!(page.total, 25, "offset {offset}");
            seen.extend(page.items.into_iter().map(|p| p.username));
        }
        assert_eq!(seen, all);
    }

    async fn an_offset_past_the_end_gives_an_empty_page_with_the_total(db) {
        let store = db.store().await;
        for i in 0..5 {
            insert_named(&store, &format!("user{i}")).await;
        }

        for offset in [5, 6, 1000, u64::MAX] {
            let query = UserQuery {
                limit: 10,
                offset,
                ..UserQuery::default()
            };
            let page = store.search_people(&query).await.unwrap();
            assert!(page.items.is_empty(), "offset {offset}");
            assert_eq!(page.total, 5, "offset {offset}");
        }

        let query = UserQuery {
            filter: UserFilter {
                q: Some("user3".into()),
                ..Default::default()
            },
            limit: 10,
            offset: 1,
            ..UserQuery::default()
        };
        let page = store.search_people(&query).await.unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.total, 1);
    }
}
