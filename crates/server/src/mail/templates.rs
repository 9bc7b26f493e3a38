//! The email templates: for every [`Template`], a subject, a plain-text body and an HTML body
//! under `templates/mail/<name>/{subject.txt, body.txt, body.html}` (the layout crates.io uses),
//! compiled by askama, and the [`AskamaComposer`] that renders them for the services.
//!
//! `.html` files are escaped by askama; `.txt` files are not, and need not be: they end up in a
//! `text/plain` part or in a header that the message builder encodes.

use std::ops::Deref;
use std::sync::Arc;

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;
use usher_core::clock::Clock;
use usher_core::mail::{ComposedMail, Composer, MailContext, Template};

/// Renders the mail templates with the platform's name.
pub struct AskamaComposer {
    platform_name: String,
    /// Only to say how long a link still works ("for 24 hours"): the composer runs when the
    /// message is queued, so `expires_at - now` is the link's lifetime.
    clock: Arc<dyn Clock>,
}

impl AskamaComposer {
    /// `platform_name` is `USHER_PLATFORM_NAME`; a [`MailContext`] that names a platform itself
    /// wins over it.
    pub fn new(platform_name: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            platform_name: platform_name.into(),
            clock,
        }
    }

    fn view(&self, context: &MailContext) -> View {
        let platform_name = if context.platform_name.trim().is_empty() {
            self.platform_name.clone()
        } else {
            context.platform_name.clone()
        };
        let name = format!("{} {}", context.first_name.trim(), context.last_name.trim())
            .trim()
            .to_owned();
        let (expires, validity) = match context.expires_at {
            Some(at) => (
                format_time(at),
                remaining(at - self.clock.now()).unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        };
        View {
            platform_name,
            name,
            username: context.username.clone(),
            link: context.link.clone().unwrap_or_default(),
            expires,
            validity,
            new_email: context.new_email.clone().unwrap_or_default(),
            space_name: context.space_name.clone().unwrap_or_default(),
        }
    }
}

impl Composer for AskamaComposer {
    fn compose(&self, template: Template, context: &MailContext) -> ComposedMail {
        let view = self.view(context);
        let parts = match template {
            Template::Invitation => {
                render::<InvitationSubject, InvitationText, InvitationHtml>(&view)
            }
            Template::Registration => {
                render::<RegistrationSubject, RegistrationText, RegistrationHtml>(&view)
            }
            Template::PasswordReset => {
                render::<PasswordResetSubject, PasswordResetText, PasswordResetHtml>(&view)
            }
            Template::EmailChanged => {
                render::<EmailChangedSubject, EmailChangedText, EmailChangedHtml>(&view)
            }
            Template::PasswordChangedByAdmin => render::<
                PasswordChangedByAdminSubject,
                PasswordChangedByAdminText,
                PasswordChangedByAdminHtml,
            >(&view),
        };
        // The templates are compiled and their values are plain strings: rendering cannot fail
        // short of a bug, which the template tests catch. A panic here would lose the change
        // that queues the mail, so fall back to a plain message instead.
        parts.unwrap_or_else(|e| {
            tracing::error!(template = template.as_str(), error = %e, "mail template failed");
            fallback(&view)
        })
    }
}

/// Everything a mail template may show, already formatted. Fields a template does not use
/// stay empty.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub platform_name: String,
    /// "First Last", or empty when unknown (registration).
    pub name: String,
    pub username: String,
    pub link: String,
    /// When the link stops working, e.g. "Wednesday 25 November 2026, 09:00 UTC".
    pub expires: String,
    /// How long the link works from now, e.g. "24 hours".
    pub validity: String,
    pub new_email: String,
    pub space_name: String,
}

fn render<'v, S, T, H>(view: &'v View) -> askama::Result<ComposedMail>
where
    S: askama::Template + From<&'v View>,
    T: askama::Template + From<&'v View>,
    H: askama::Template + From<&'v View>,
{
    let subject = S::from(view).render()?;
    Ok(ComposedMail {
        // One line, whatever a name or template holds: a header cannot carry line breaks.
        subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
        text: T::from(view).render()?,
        html: H::from(view).render()?,
    })
}

fn fallback(view: &View) -> ComposedMail {
    let text = if view.link.is_empty() {
        format!("A message from {}.\n", view.platform_name)
    } else {
        format!("A message from {}:\n\n{}\n", view.platform_name, view.link)
    };
    ComposedMail {
        subject: view.platform_name.clone(),
        html: format!(
            "<p>{}</p>",
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        ),
        text,
    }
}

const EXPIRY_FORMAT: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday] [day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
);

fn format_time(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(EXPIRY_FORMAT)
        .unwrap_or_else(|_| at.to_string())
}

/// "24 hours", "7 days", "15 minutes", "30 seconds": the largest unit that still reads as a
/// whole number people use. `None` once the time has passed.
fn remaining(left: time::Duration) -> Option<String> {
    let seconds = left.whole_seconds();
    if seconds <= 0 {
        return None;
    }
    let rounded = |unit: i64| (seconds + unit / 2) / unit;
    let (n, unit) = if seconds >= 2 * 86_400 {
        (rounded(86_400), "day")
    } else if seconds >= 2 * 3600 {
        (rounded(3600), "hour")
    } else if seconds >= 120 {
        (rounded(60), "minute")
    } else {
        (seconds, "second")
    };
    Some(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }))
}

/// Declares the askama structs of one template: each borrows the [`View`] and derefs to it, so
/// the template files name the fields directly (`{{ name }}`, `{{ link }}`).
macro_rules! mail_template {
    ($($name:ident => $path:literal),* $(,)?) => {$(
        #[derive(askama::Template)]
        #[template(path = $path)]
        struct $name<'a> {
            view: &'a View,
        }

        impl<'a> From<&'a View> for $name<'a> {
            fn from(view: &'a View) -> Self {
                Self { view }
            }
        }

        impl Deref for $name<'_> {
            type Target = View;
            fn deref(&self) -> &View {
                self.view
            }
        }
    )*};
}

mail_template! {
    InvitationSubject => "mail/invitation/subject.txt",
    InvitationText => "mail/invitation/body.txt",
    InvitationHtml => "mail/invitation/body.html",
    RegistrationSubject => "mail/registration/subject.txt",
    RegistrationText => "mail/registration/body.txt",
    RegistrationHtml => "mail/registration/body.html",
    PasswordResetSubject => "mail/password_reset/subject.txt",
    PasswordResetText => "mail/password_reset/body.txt",
    PasswordResetHtml => "mail/password_reset/body.html",
    EmailChangedSubject => "mail/email_changed/subject.txt",
    EmailChangedText => "mail/email_changed/body.txt",
    EmailChangedHtml => "mail/email_changed/body.html",
    PasswordChangedByAdminSubject => "mail/password_changed_by_admin/subject.txt",
    PasswordChangedByAdminText => "mail/password_changed_by_admin/body.txt",
    PasswordChangedByAdminHtml => "mail/password_changed_by_admin/body.html",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_time_reads_in_whole_units() {
        let d = time::Duration::seconds;
        assert_eq!(remaining(d(86_400)).as_deref(), Some("24 hours"));
        assert_eq!(remaining(d(86_399)).as_deref(), Some("24 hours"));
        assert_eq!(remaining(d(7 * 86_400)).as_deref(), Some("7 days"));
        assert_eq!(remaining(d(900)).as_deref(), Some("15 minutes"));
        assert_eq!(remaining(d(30)).as_deref(), Some("30 seconds"));
        assert_eq!(remaining(d(1)).as_deref(), Some("1 second"));
        assert_eq!(remaining(d(0)), None);
    }

    #[test]
    fn expiry_is_written_out_in_utc() {
        let at = time::macros::datetime!(2026-11-25 09:00 UTC);
        assert_eq!(format_time(at), "Wednesday 25 November 2026, 09:00 UTC");
    }
}
