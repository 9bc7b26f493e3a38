//! Invitation and reset tokens, and notices queued with a change.

use usher_core::mail::{ComposedMail, DeliveryState, NewOutboxMessage, Template};
use usher_core::store::{NewToken, PersonUpdate, Store, StoreError, TokenKind};
use usher_store::on_both_backends;

use crate::support::*;

fn token(hash: &str, kind: TokenKind, person_id: i64, minutes: i64) -> NewToken {
    NewToken {
        hash: hash.to_owned(),
        kind,
        person_id,
        created_at: at(minutes),
        expires_at: at(minutes + 24 * 60),
    }
}

fn message(recipient: &str, template: Template, person_id: i64, minutes: i64) -> NewOutboxMessage {
    NewOutboxMessage {
        recipient: recipient.to_owned(),
        template,
        mail: ComposedMail {
            subject: format!("{} for {recipient}", template.as_str()),
            text: "link: http://x/join/secret".into(),
            html: "<p>link</p>".into(),
        },
        person_id: Some(person_id),
        created_at: at(minutes),
    }
}

on_both_backends! {
    async fn an_invitation_sets_invited_at_and_queues_its_message(db) {
        let store = db.store().await;
        let p = insert_named(&store, "jane.doe").await;
        store
            .record_invitation(
                &token("h1", TokenKind::Invitation, p.id, 5),
                &message(&p.email, Template::Invitation, p.id, 5),
                &audit("user.invite", "jane.doe", at(5)),
            )
            .await
            .unwrap();
        let p = store.person_by_id(p.id).await.unwrap().unwrap();
        assert_eq!(p.invited_at, Some(at(5)));
        let delivery = p.invitation_delivery.expect("delivery state");
        assert_eq!(delivery.state, DeliveryState::Queued);
        assert_eq!(delivery.attempts, 0);
        let t = store.token("h1").await.unwrap().unwrap();
        assert_eq!(t.kind, TokenKind::Invitation);
        assert!(t.is_live(at(6)));
        assert!(!t.is_live(at(5 + 24 * 60)));
        let claimed = store.claim_messages(at(5), 10, at(10)).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].template, "invitation");
        assert_eq!(claimed[0].recipient, p.email);
        // Searches carry the delivery state too.
        let found = store.search_people(&q("jane")).await.unwrap();
        assert_eq!(found.items[0].invitation_delivery.as_ref().unwrap().state, DeliveryState::Queued);
    }

    async fn a_resend_voids_the_earlier_link(db) {
        let store = db.store().await;
        let p = insert_named(&store, "jane.doe").await;
        for (hash, minute) in [("old", 1), ("new", 2)] {
            store
                .record_invitation(
                    &token(hash, TokenKind::Invitation, p.id, minute),
                    &message(&p.email, Template::Invitation, p.id, minute),
                    &audit("user.invite", "jane.doe", at(minute)),
                )
                .await
                .unwrap();
        }
        assert!(store.token("old").await.unwrap().is_none());
        let err = store
            .redeem_token("old", TokenKind::Invitation, "$argon2id$x", at(3), &audit("user.join", "jane.doe", at(3)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound));
        let id = store
            .redeem_token("new", TokenKind::Invitation, "$argon2id$x", at(3), &audit("user.join", "jane.doe", at(3)))
            .await
            .unwrap();
        assert_eq!(id, p.id);
        let p = store.person_by_id(p.id).await.unwrap().unwrap();
        assert_eq!(p.joined_at, Some(at(3)));
        assert!(p.has_password);
        assert!(!p.password_temporary);
        assert_eq!(store.password_hash(p.id).await.unwrap().as_deref(), Some("$argon2id$x"));
    }

    async fn a_token_works_once_only_before_expiry_and_only_for_its_kind(db) {
        let store = db.store().await;
        let p = insert_named(&store, "jane.doe").await;
        store
            .record_password_reset(
                &token("reset", TokenKind::PasswordReset, p.id, 0),
                &message(&p.email, Template::PasswordReset, p.id, 0),
            )
            .await
            .unwrap();
        let a = || audit("user.password_reset", "jane.doe", at(1));
        let wrong_kind = store.redeem_token("reset", TokenKind::Invitation, "h", at(1), &a()).await;
        assert!(matches!(wrong_kind, Err(StoreError::NotFound)));
        let expired = store.redeem_token("reset", TokenKind::PasswordReset, "h", at(24 * 60), &a()).await;
        assert!(matches!(expired, Err(StoreError::NotFound)));
        store.redeem_token("reset", TokenKind::PasswordReset, "h", at(1), &a()).await.unwrap();
        let again = store.redeem_token("reset", TokenKind::PasswordReset, "h2", at(2), &a()).await;
        assert!(matches!(again, Err(StoreError::NotFound)));
        assert_eq!(store.token("reset").await.unwrap().unwrap().used_at, Some(at(1)));
        let p = store.person_by_id(p.id).await.unwrap().unwrap();
        assert_eq!(p.joined_at, None, "a reset is not a join");
        assert_eq!(p.invited_at, None);
        let unknown = store.redeem_token("nope", TokenKind::PasswordReset, "h", at(1), &a()).await;
        assert!(matches!(unknown, Err(StoreError::NotFound)));
    }

    async fn an_invitation_for_a_missing_person_is_not_found(db) {
        let store = db.store().await;
        let err = store
            .record_invitation(
                &token("h", TokenKind::Invitation, 999, 0),
                &message("x@example.org", Template::Invitation, 999, 0),
                &audit("user.invite", "ghost", at(0)),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound));
        assert!(store.claim_messages(at(0), 10, at(1)).await.unwrap().is_empty());
    }

    async fn notices_are_queued_with_the_change_or_not_at_all(db) {
        let store = db.store().await;
        let jane = insert_named(&store, "jane.doe").await;
        let john = insert_named(&store, "john.roe").await;
        let mut update = PersonUpdate::from_person(&jane);
        update.email = "new@example.org".into();
        let notices = [message(&jane.email, Template::EmailChanged, jane.id, 1)];
        store
            .update_person_notifying(jane.id, &update, &audit("user.update", "jane.doe", at(1)), &notices)
            .await
            .unwrap();
        let queued = store.claim_messages(at(1), 10, at(2)).await.unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].recipient, "jane.doe@example.org", "the old address");
        store.message_sent(queued[0].id, at(1)).await.unwrap();
        // A change that fails (email taken) queues nothing.
        let mut clash = PersonUpdate::from_person(&jane);
        clash.email = john.email.clone();
        let notices = [message("new@example.org", Template::EmailChanged, jane.id, 3)];
        let err = store
            .update_person_notifying(jane.id, &clash, &audit("user.update", "jane.doe", at(3)), &notices)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        assert!(store.claim_messages(at(10), 10, at(11)).await.unwrap().is_empty());
    }
}
