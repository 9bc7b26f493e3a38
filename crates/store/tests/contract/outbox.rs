//! The mail outbox as the delivery worker uses it: claims under a lease, oldest first and never
//! to two claimers at once; sent messages forget their bodies; failures are retried at the time
//! given, or given up; the delivery state reports attempts and the last error.

use usher_core::mail::{ComposedMail, Delivery, DeliveryState, NewOutboxMessage, Template};
use usher_core::store::{Store, StoreError};
use usher_store::{on_both_backends, Pool, SqlStore};

use crate::support::*;

fn message(recipient: &str, minutes: i64) -> NewOutboxMessage {
    NewOutboxMessage {
        recipient: recipient.to_owned(),
        template: Template::PasswordReset,
        mail: ComposedMail {
            subject: format!("Reset for {recipient}"),
            text: "Open http://x/reset/secret".into(),
            html: "<p><a href=\"http://x/reset/secret\">Reset</a></p>".into(),
        },
        person_id: None,
        created_at: at(minutes),
    }
}

async fn queue(store: &SqlStore, recipient: &str, minutes: i64) -> i64 {
    store
        .queue_message(&message(recipient, minutes))
        .await
        .unwrap_or_else(|e| panic!("queuing for {recipient}: {e}"))
}

async fn delivery(store: &SqlStore, id: i64) -> Delivery {
    store
        .message_delivery(id)
        .await
        .expect("delivery")
        .expect("message exists")
}

/// The stored bodies, which no store method returns once a message is done.
async fn bodies(store: &SqlStore, id: i64) -> (Option<String>, Option<String>) {
    let sql = "SELECT body_text, body_html FROM outbox WHERE id = $1";
    match store.pool() {
        Pool::Sqlite(p) => sqlx::query_as(sql).bind(id).fetch_one(p).await,
        Pool::Postgres(p) => sqlx::query_as(sql).bind(id).fetch_one(p).await,
    }
    .expect("outbox row")
}

fn ids(messages: &[usher_core::mail::OutboxMessage]) -> Vec<i64> {
    messages.iter().map(|m| m.id).collect()
}

on_both_backends! {
    async fn a_queued_message_is_claimed_with_its_content_and_held_until_its_lease_ends(db) {
        let store = db.store().await;
        let id = queue(&store, "jane@example.org", 0).await;
        assert_eq!(
            delivery(&store, id).await,
            Delivery { state: DeliveryState::Queued, attempts: 0, last_error: None, sent_at: None }
        );

        let claimed = store.claim_messages(at(0), 10, at(15)).await.unwrap();
        assert_eq!(ids(&claimed), [id]);
        let m = &claimed[0];
        assert_eq!(m.recipient, "jane@example.org");
        assert_eq!(m.template, "password_reset");
        assert_eq!(m.subject, "Reset for jane@example.org");
        assert_eq!(m.text, "Open http://x/reset/secret");
        assert_eq!(m.html, "<p><a href=\"http://x/reset/secret\">Reset</a></p>");
        assert_eq!(m.attempts, 0);
        assert_eq!(m.created_at, at(0));

        // Claimed: nobody else gets it while the lease runs, not even the same claimer.
        assert!(store.claim_messages(at(0), 10, at(15)).await.unwrap().is_empty());
        assert!(store.claim_messages(at(14), 10, at(29)).await.unwrap().is_empty());
        // A claimer that died only delays it: due again when the lease ends.
        let again = store.claim_messages(at(15), 10, at(30)).await.unwrap();
        assert_eq!(ids(&again), [id]);
        assert_eq!(again[0].attempts, 0, "a lapsed lease is no attempt");
        assert_eq!(delivery(&store, id).await.state, DeliveryState::Queued);
    }

    async fn a_message_is_not_due_before_it_was_queued(db) {
        let store = db.store().await;
        queue(&store, "jane@example.org", 10).await;
        assert!(store.claim_messages(at(9), 10, at(20)).await.unwrap().is_empty());
        assert_eq!(store.claim_messages(at(10), 10, at(20)).await.unwrap().len(), 1);
    }

    async fn claims_take_the_oldest_due_messages_up_to_the_limit(db) {
        let store = db.store().await;
        let first = queue(&store, "a@example.org", 0).await;
        let second = queue(&store, "b@example.org", 1).await;
        let third = queue(&store, "c@example.org", 2).await;
        let _later = queue(&store, "d@example.org", 60).await;

        assert_eq!(ids(&store.claim_messages(at(5), 2, at(10)).await.unwrap()), [first, second]);
        assert_eq!(ids(&store.claim_messages(at(5), 2, at(10)).await.unwrap()), [third]);
        assert!(store.claim_messages(at(5), 2, at(10)).await.unwrap().is_empty());
    }

    async fn a_sent_message_forgets_its_bodies_and_is_never_claimed_again(db) {
        let store = db.store().await;
        let id = queue(&store, "jane@example.org", 0).await;
        store.claim_messages(at(0), 10, at(15)).await.unwrap();
        store.message_sent(id, at(1)).await.unwrap();

        assert_eq!(
            delivery(&store, id).await,
            Delivery {
                state: DeliveryState::Sent,
                attempts: 1,
                last_error: None,
                sent_at: Some(at(1)),
            }
        );
        assert_eq!(bodies(&store, id).await, (None, None), "the link is gone");
        assert!(store.claim_messages(at(60 * 48), 10, at(60 * 49)).await.unwrap().is_empty());
    }

    async fn a_failed_attempt_is_retried_at_its_time_with_the_error_recorded(db) {
        let store = db.store().await;
        let id = queue(&store, "jane@example.org", 0).await;
        store.claim_messages(at(0), 10, at(15)).await.unwrap();
        store
            .message_failed(id, "connection refused", Some(at(5)))
            .await
            .unwrap();
        assert_eq!(
            delivery(&store, id).await,
            Delivery {
                state: DeliveryState::Queued,
                attempts: 1,
                last_error: Some("connection refused".into()),
                sent_at: None,
            }
        );

        // The retry time replaces the lease.
        assert!(store.claim_messages(at(4), 10, at(20)).await.unwrap().is_empty());
        let retried = store.claim_messages(at(5), 10, at(20)).await.unwrap();
        assert_eq!(ids(&retried), [id]);
        assert_eq!(retried[0].attempts, 1);
        assert_eq!(retried[0].text, "Open http://x/reset/secret", "kept for the retry");

        // A later success clears the error and counts every attempt.
        store.message_sent(id, at(6)).await.unwrap();
        let d = delivery(&store, id).await;
        assert_eq!((d.state, d.attempts, d.last_error), (DeliveryState::Sent, 2, None));
    }

    async fn a_message_given_up_ends_failed_with_its_attempts_and_without_its_bodies(db) {
        let store = db.store().await;
        let id = queue(&store, "jane@example.org", 0).await;
        for (n, minutes) in [(1, 0), (2, 1), (3, 3)] {
            let claimed = store.claim_messages(at(minutes), 10, at(minutes + 15)).await.unwrap();
            assert_eq!(ids(&claimed), [id], "attempt {n}");
            let retry = (n < 3).then(|| at(minutes + n));
            store.message_failed(id, &format!("refused {n}"), retry).await.unwrap();
        }

        assert_eq!(
            delivery(&store, id).await,
            Delivery {
                state: DeliveryState::Failed,
                attempts: 3,
                last_error: Some("refused 3".into()),
                sent_at: None,
            }
        );
        assert_eq!(bodies(&store, id).await, (None, None));
        assert!(store.claim_messages(at(60 * 48), 10, at(60 * 49)).await.unwrap().is_empty());
    }

    async fn a_late_failure_never_undoes_a_delivery_another_node_recorded(db) {
        let store = db.store().await;
        let id = queue(&store, "late@example.org", 0).await;
        store.claim_messages(at(0), 10, at(1)).await.unwrap();
        store.message_sent(id, at(2)).await.unwrap();
        store.message_failed(id, "timed out", None).await.unwrap();
        store.message_failed(id, "timed out", Some(at(5))).await.unwrap();
        let d = delivery(&store, id).await;
        assert_eq!(d.state, usher_core::mail::DeliveryState::Sent);
        assert_eq!(d.last_error, None);
    }

    async fn outcomes_for_an_unknown_message_are_not_found(db) {
        let store = db.store().await;
        assert!(matches!(store.message_sent(999, at(0)).await, Err(StoreError::NotFound)));
        assert!(matches!(
            store.message_failed(999, "x", Some(at(1))).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.message_failed(999, "x", None).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(store.message_delivery(999).await.unwrap(), None);
    }

    async fn two_claimers_on_one_database_never_get_the_same_message(db) {
        let one = db.store().await;
        let two = db.store().await;
        let mut queued = Vec::new();
        for i in 0..60 {
            queued.push(queue(&one, &format!("p{i}@example.org"), 0).await);
        }

        async fn drain(store: std::sync::Arc<SqlStore>) -> Vec<i64> {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_messages(at(1), 4, at(30)).await.expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(ids(&batch));
                // Let the other claimer in between batches.
                tokio::task::yield_now().await;
            }
        }
        // Separate tasks on the multi-threaded runtime: the claims really overlap.
        let (a, b) = tokio::join!(tokio::spawn(drain(one)), tokio::spawn(drain(two)));
        let (a, b) = (a.expect("first claimer"), b.expect("second claimer"));

        let mut all: Vec<i64> = a.iter().chain(b.iter()).copied().collect();
        all.sort_unstable();
        let claimed_twice: Vec<_> = all.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        assert!(claimed_twice.is_empty(), "claimed by both: {claimed_twice:?}");
        assert_eq!(all, queued, "every message claimed");
    }
}
