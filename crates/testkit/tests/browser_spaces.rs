//! Spaces in a real browser (see `browser_support` for the driver): an administrator creates a
//! space open to guests and invites an outside address from its page; the guest follows the
//! emailed link (a real SMTP conversation), registers, and lands on their own page, which shows
//! the space; the admin site stays closed to them. Screenshots go to the temporary directory
//! (`usher-space*.png`).

#[macro_use]
mod browser_support;

use browser_support::*;
use mail_parser::MessageParser;
use usher_testkit::smtp::SmtpSink;

fn register_link(data: &[u8]) -> String {
    let message = MessageParser::default().parse(data).expect("a message");
    let text = message.body_text(0).unwrap_or_default().into_owned();
    let start = text
        .find("/register/")
        .unwrap_or_else(|| panic!("no /register/ link in:\n{text}"));
    let from = text[..start].rfind("http").expect("an absolute link");
    text[from..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(['.', ',', '>', ')'])
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_person_invited_from_a_space_registers_and_sees_only_their_space() {
    let sink = std::sync::Arc::new(SmtpSink::start().await);
    let url = sink.url();
    let mailbox = sink.clone();
    browser_test_with(
        move |config| config.smtp_url = Some(url),
        move |ctx| async move {
            let c = &ctx.c;
            log_in_as_admin(&ctx).await;

            // The admin creates a space that accepts guests.
            c.goto(&ctx.app.url("/admin/spaces")).await.unwrap();
            fill(c, "input[name=display_name]", "Partners").await;
            fill(c, "input[name=name]", "partners").await;
            click(c, "input[name=external_invitations]").await;
            click(c, "form[action='/admin/spaces'] button[type=submit]").await;
            wait_for_path(c, "/spaces/partners?notice=created").await;
            assert_eq!(text_of(c, "h1").await, "Partners");

            // …and invites an outside address from the space page.
            fill(
                c,
                "form[action='/spaces/partners/invitations'] input[name=email]",
                "gina@outside.example",
            )
            .await;
            click(
                c,
                "form[action='/spaces/partners/invitations'] button[type=submit]",
            )
            .await;
            wait_for_path(c, "/spaces/partners?notice=invited").await;
            let pending = text_of(c, "table .badge.state-pending").await;
            assert_eq!(pending, "pending");
            screenshot(c, "usher-space.png").await;

            let received = mailbox.wait_for(1, TIMEOUT).await;
            assert_eq!(received[0].recipients, ["gina@outside.example"]);
            let link = register_link(&received[0].data);

            // The guest, in a fresh session, registers through the link.
            c.delete_all_cookies().await.unwrap();
            c.goto(&link).await.unwrap();
            assert_eq!(
                value_of(c, "input[name=email]").await,
                "gina@outside.example"
            );
            fill(c, "input[name=first_name]", "Gina").await;
            fill(c, "input[name=last_name]", "Guest").await;
            fill(c, "input[name=password]", "gina-guest-passphrase").await;
            fill(
                c,
                "input[name=password_confirmation]",
                "gina-guest-passphrase",
            )
            .await;
            screenshot(c, "usher-space-register.png").await;
            click(c, "form[action^='/register/'] button[type=submit]").await;
            wait_for_path(c, "/me").await;
            let page = text_of(c, "main").await;
            assert!(page.contains("Partners"), "{page}");
            assert!(page.contains("gina.guest"), "{page}");
            assert!(page.contains("Guest (external)"), "{page}");
            screenshot(c, "usher-space-me.png").await;

            // Their space opens; the admin site does not.
            c.goto(&ctx.app.url("/spaces/partners")).await.unwrap();
            let members = text_of(c, "main").await;
            assert!(members.contains("gina.guest"), "{members}");
            c.goto(&ctx.app.url("/admin/users")).await.unwrap();
            assert_eq!(text_of(c, "h1").await, "Administrators only");

            // Back as admin, the invitation is accepted and the person is a Guest.
            let person = ctx
                .app
                .usher
                .store
                .person_by_username("gina.guest")
                .await
                .unwrap()
                .expect("registered");
            assert_eq!(person.kind.as_str(), "external");
        },
    )
    .await;
}
