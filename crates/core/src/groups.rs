//! Groups and roles. A membership gives a person a role in a group; what that grants is
//! described here once, for the detail page and the API.

use serde::Serialize;

pub const ADMINISTRATORS: &str = "/platform/administrators";
pub const USERS: &str = "/platform/users";
pub const EXTERNALS: &str = "/platform/externals";

/// Roles a membership can carry.
pub const ROLES: &[&str] = &["member", "manager", "redactor", "publisher"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub role: String,
    pub group: String,
    pub group_label: String,
}

impl Membership {
    /// One line on what the membership grants.
    pub fn summary(&self) -> String {
        role_summary(&self.group, &self.role)
    }
}

pub fn role_summary(group: &str, role: &str) -> String {
    match (group, role) {
        (ADMINISTRATORS, _) => "Administers the platform: users, spaces, settings".into(),
        (USERS, "manager") => "Manages the platform's internal users".into(),
        (USERS, _) => "Uses the platform as an internal user: directory, spaces, profile".into(),
        (EXTERNALS, _) => "Guest access: only the spaces they were invited to".into(),
        (g, "manager") if g.starts_with("/spaces/") => {
            "Manages the space: members, invitations, settings".into()
        }
        (g, "redactor") if g.starts_with("/spaces/") => {
            "Writes and edits the space's content".into()
        }
        (g, "publisher") if g.starts_with("/spaces/") => {
            "Publishes the space's content to its audience".into()
        }
        (g, _) if g.starts_with("/spaces/") => "Takes part in the space".into(),
        (_, "manager") => "Manages the group and its members".into(),
        _ => "Member of the group".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_what_is_granted() {
        assert_eq!(
            role_summary(ADMINISTRATORS, "manager"),
            "Administers the platform: users, spaces, settings"
        );
        assert!(role_summary("/spaces/sales", "manager").contains("Manages the space"));
        assert!(role_summary(EXTERNALS, "member").contains("Guest"));
    }
}
