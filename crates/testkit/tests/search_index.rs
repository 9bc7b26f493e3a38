//! The in-memory search index end to end, on SQLite and PostgreSQL: a second node (services of
//! their own over the same database, as a second `usher serve` on PostgreSQL, or `usher serve`
//! beside `usher import` on one SQLite file) finds exactly what the first one wrote (people
//! created, imported, disabled, deleted), and its answers equal the store's SQL answers for
//! every filter, sort and page tried.

use reqwest::{Method, StatusCode};
use serde_json::json;
use time::Duration;
use usher_core::clock::Clock;
use usher_core::people::{PersonType, Source};
use usher_core::query::{EnrollmentFilter, Sort, SortColumn, UserFilter, UserQuery};
use usher_core::service::{Actor, RunOptions, Usher};
use usher_server::imports::run_pending_imports;
use usher_testkit::{on_both_backends, TestApp};

/// Another node on `app`'s database, its index loaded.
async fn other_node(app: &TestApp) -> Usher {
    let store = app.db.store().await;
    let node =
        usher_server::serve::services(store, app.clock.clone(), &usher_server::Config::default());
    node.load_search_index().await.expect("index loads");
    assert!(node.search_index_ready());
    node
}

async fn admin(node: &Usher) -> Actor {
    let admin = node
        .store
        .person_by_username("admin")
        .await
        .unwrap()
        .unwrap();
    Actor {
        id: admin.id,
        username: admin.username,
        admin: true,
        super_user: true,
    }
}

async fn found(node: &Usher, q: &str, filter: UserFilter) -> (u64, Vec<String>) {
    let query = UserQuery {
        filter: UserFilter {
            q: Some(q.to_owned()),
            ..filter
        },
        limit: 500,
        ..UserQuery::default()
    };
    let page = node
        .search_people(&admin(node).await, &query)
        .await
        .unwrap();
    (
        page.total,
        page.items.into_iter().map(|p| p.username).collect(),
    )
}

/// Imports `rows` generated people through the API, run in steps of 7 rows.
async fn import_people(app: &TestApp, rows: usize) {
    import_people_named(app, rows, "Stone").await;
}

/// The same people with last names starting with `last` (changed ones are updated).
async fn import_people_named(app: &TestApp, rows: usize, last: &str) {
    let mut csv = String::from("userName,firstName,lastName,password,email\n");
    for i in 0..rows {
        let name = ["bavo", "lina", "terma", "rist", "nabo"][i % 5];
        // Names hold no digits: a letter suffix keeps them apart.
        let suffix: String = [b'a' + (i / 26) as u8, b'a' + (i % 26) as u8]
            .iter()
            .map(|&b| b as char)
            .collect();
        csv.push_str(&format!(
            "person.{i},{}{suffix},{last}{name},,person.{i}@example.test\n",
            name.to_uppercase()
        ));
    }
    let api = app.admin_api().await;
    let (status, body) = api
        .send(
            api.request(Method::POST, "/api/v1/imports")
                .header("content-type", "text/csv")
                .body(csv),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let options = RunOptions {
        batch_size: Some(7),
        ..RunOptions::default()
    };
    run_pending_imports(&app.usher, "test-node", Duration::minutes(2), options)
        .await
        .expect("import runs");
}

on_both_backends! {
    async fn a_second_node_finds_what_the_first_one_wrote(db) {
        let app = TestApp::spawn(db).await;
        let other = other_node(&app).await;
        assert_eq!(found(&other, "vito", UserFilter::default()).await.0, 0);

        app.create_person("ana.vito", "Ána", "Vito").await;
        import_people(&app, 30).await;
        assert_eq!(
            found(&other, "vito", UserFilter::default()).await,
            (1, vec!["ana.vito".to_owned()])
        );
        assert_eq!(found(&other, "stone", UserFilter::default()).await.0, 30);
        assert_eq!(found(&other, "lina", UserFilter::default()).await.0, 6);

        let api = app.admin_api().await;
        let (status, body) = api.patch("/api/v1/users/ana.vito", json!({"enabled": false})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let disabled = UserFilter {
            enabled: Some(false),
            ..UserFilter::default()
        };
        assert_eq!(found(&other, "", disabled).await.1, ["ana.vito"]);

        let (status, body) = api.delete("/api/v1/users/ana.vito").await;
        assert!(status.is_success(), "{status} {body}");
        assert_eq!(found(&other, "ana", UserFilter::default()).await.0, 0);

        // An import that changes people: the step stamps its updates itself.
        import_people_named(&app, 30, "Marble").await;
        assert_eq!(found(&other, "marble", UserFilter::default()).await.0, 30);
        assert_eq!(found(&other, "stone", UserFilter::default()).await.0, 0);
    }

    async fn the_index_answers_as_the_store_s_sql_does(db) {
        let app = TestApp::spawn(db).await;
        import_people(&app, 60).await;
        for i in 0..6 {
            let username = format!("person.{i}");
            let api = app.admin_api().await;
            api.patch(&format!("/api/v1/users/{username}"), json!({"enabled": i % 2 == 0})).await;
            if i % 3 == 0 {
                let person = app.usher.store.person_by_username(&username).await.unwrap().unwrap();
                app.usher.store.record_login(person.id, app.clock.now()).await.unwrap();
            }
        }
        let node = other_node(&app).await;
        let actor = admin(&node).await;
        let filters = [
            UserFilter::default(),
            UserFilter { q: Some("st".into()), ..UserFilter::default() },
            UserFilter { q: Some("ONE LIN".into()), ..UserFilter::default() },
            UserFilter { q: Some("person.1".into()), enabled: Some(true), ..UserFilter::default() },
            UserFilter { connected: Some(false), ..UserFilter::default() },
            UserFilter { enrollment: Some(EnrollmentFilter::NeverEnrolled), ..UserFilter::default() },
            UserFilter { enrollment: Some(EnrollmentFilter::NotPossible), ..UserFilter::default() },
            UserFilter { kind: Some(PersonType::Internal), source: Some(Source::Internal), ..UserFilter::default() },
            UserFilter { q: Some("zzz".into()), ..UserFilter::default() },
        ];
        for filter in &filters {
            for column in SortColumn::ALL {
                for descending in [false, true] {
                    for (offset, limit) in [(0, 20), (15, 10), (55, 20)] {
                        let query = UserQuery {
                            filter: filter.clone(),
                            sort: Sort { column, descending },
                            limit,
                            offset,
                        };
                        let indexed = node.search_people(&actor, &query).await.unwrap();
                        let sql = node.store.search_people(&query).await.unwrap();
                        let names = |page: &usher_core::query::Page<usher_core::people::Person>| {
                            page.items.iter().map(|p| p.username.clone()).collect::<Vec<_>>()
                        };
                        assert_eq!(indexed.total, sql.total, "{query:?}");
                        assert_eq!(names(&indexed), names(&sql), "{query:?}");
                    }
                }
            }
        }
    }
}
