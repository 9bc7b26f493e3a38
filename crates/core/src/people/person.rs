use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Profile;
use crate::mail::Delivery;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonType {
    Internal,
    External,
}

impl PersonType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::External => "external",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "internal" => Some(Self::Internal),
            "external" => Some(Self::External),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// This server's store.
    Internal,
    /// Synchronised from a directory: read-only here.
    Ldap,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::Ldap => "ldap",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "internal" => Some(Self::Internal),
            "ldap" => Some(Self::Ldap),
            _ => None,
        }
    }
}

/// Where a person stands with enrollment (product §2), as each row of the list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enrollment {
    /// Never connected, never invited: the envelope sends.
    Invite,
    /// Invited, never connected: the envelope resends.
    Reinvite,
    /// Invited and connected.
    Accepted,
    /// Connected without an invitation.
    Connected,
    /// External or LDAP: nobody enrolls them from here.
    NotPossible,
}

impl Enrollment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::Reinvite => "reinvite",
            Self::Accepted => "accepted",
            Self::Connected => "connected",
            Self::NotPossible => "not_possible",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Invite => "Not invited",
            Self::Reinvite => "Invited",
            Self::Accepted => "Joined",
            Self::Connected => "Connected",
            Self::NotPossible => "No enrollment",
        }
    }
}

/// A person as stored. Values here were validated when written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub enabled: bool,
    pub kind: PersonType,
    pub source: Source,
    pub super_user: bool,
    pub created_at: OffsetDateTime,
    pub last_login_at: Option<OffsetDateTime>,
    pub invited_at: Option<OffsetDateTime>,
    pub joined_at: Option<OffsetDateTime>,
    pub has_password: bool,
    /// Set by someone else: the person must choose their own at the next login.
    pub password_temporary: bool,
    pub profile: Profile,
    /// How the last invitation email stands, if one was sent.
    pub invitation_delivery: Option<Delivery>,
}

impl Person {
    pub fn enrollment(&self) -> Enrollment {
        if self.kind == PersonType::External || self.source == Source::Ldap {
            return Enrollment::NotPossible;
        }
        match (self.invited_at.is_some(), self.last_login_at.is_some()) {
            (true, true) => Enrollment::Accepted,
            (true, false) => Enrollment::Reinvite,
            (false, true) => Enrollment::Connected,
            (false, false) => Enrollment::Invite,
        }
    }

    pub fn display_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> Person {
        Person {
            id: 1,
            username: "jane.doe".into(),
            first_name: "Jane".into(),
            last_name: "Doe".into(),
            email: "jane@example.org".into(),
            enabled: true,
            kind: PersonType::Internal,
            source: Source::Internal,
            super_user: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_login_at: None,
            invited_at: None,
            joined_at: None,
            has_password: false,
            password_temporary: false,
            profile: Profile::default(),
            invitation_delivery: None,
        }
    }

    #[test]
    fn enrollment_follows_invitation_and_login() {
        let t = Some(OffsetDateTime::UNIX_EPOCH);
        let mut p = person();
        assert_eq!(p.enrollment(), Enrollment::Invite);
        p.invited_at = t;
        assert_eq!(p.enrollment(), Enrollment::Reinvite);
        p.last_login_at = t;
        assert_eq!(p.enrollment(), Enrollment::Accepted);
        p.invited_at = None;
        assert_eq!(p.enrollment(), Enrollment::Connected);
        p.kind = PersonType::External;
        assert_eq!(p.enrollment(), Enrollment::NotPossible);
        p.kind = PersonType::Internal;
        p.source = Source::Ldap;
        assert_eq!(p.enrollment(), Enrollment::NotPossible);
    }
}
