//! What a row does to the stored people, given what the store knows about its batch: the
//! username decides create or update, and the consistency rules of product §6 apply.
//!
//! - Create: the names and the email are required; the username must not be reserved (a
//!   reserved word, or a deleted person's); the email must belong to nobody; a password is
//!   checked against the policy and becomes temporary. The person is a `member` of
//!   `/platform/users` like every new internal person.
//! - Update: empty cells keep the stored values; the password column is ignored (import never
//!   overwrites a password); a new email must belong to nobody else; `groups` only adds
//!   memberships (an existing membership keeps its role); LDAP accounts are read-only; nobody
//!   disables their own account or the super user.
//! - A row with nothing to change is `unchanged`, which makes importing a file twice a no-op.
//! - `onboardUser` invites people who can be invited and were never invited, so that a second
//!   import sends nothing again.

use std::collections::{HashMap, HashSet};

use super::header::{Column, Header};
use super::job::{ImportIssue, ImportKeys, ImportLookup, Severity};
use super::row::{issue, Cell, ParsedRow};
use crate::groups::{Membership, USERS};
use crate::people::{
    Email, Password, PasswordPolicy, Person, PersonName, Profile, Source, Username,
};
use crate::service::check_invitable;
use crate::store::PersonUpdate;

/// The store's answers for one batch, indexed.
#[derive(Debug, Default)]
pub struct BatchLookup {
    people: HashMap<String, (Person, Vec<Membership>)>,
    email_owners: HashMap<String, (i64, String)>,
    deleted: HashSet<String>,
    groups: HashSet<String>,
}

impl From<ImportLookup> for BatchLookup {
    fn from(l: ImportLookup) -> Self {
        Self {
            people: l
                .people
                .into_iter()
                .map(|(p, m)| (p.username.clone(), (p, m)))
                .collect(),
            email_owners: l
                .email_owners
                .into_iter()
                .map(|(key, id, username)| (key, (id, username)))
                .collect(),
            deleted: l.deleted.into_iter().collect(),
            groups: l.groups.into_iter().collect(),
        }
    }
}

/// What to ask the store about a batch.
pub fn keys_of(rows: &[ParsedRow]) -> ImportKeys {
    let mut keys = ImportKeys::default();
    let mut groups = HashSet::new();
    for row in rows {
        if let Some(u) = &row.username {
            keys.usernames.push(u.as_str().to_owned());
        }
        if let Cell::Valid(e) = &row.email {
            keys.email_keys.push(e.key());
        }
        for (path, _) in &row.groups {
            if groups.insert(path.clone()) {
                keys.groups.push(path.clone());
            }
        }
    }
    keys
}

pub struct PlanContext<'a> {
    pub header: &'a Header,
    pub policy: &'a PasswordPolicy,
    /// The person running the import (never disables themselves); `None` for the shell.
    pub actor_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct CreatePlan {
    pub username: Username,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub email: Email,
    pub password: Option<Password>,
    pub enabled: bool,
    pub profile: Profile,
    /// `/platform/users` first, then the file's groups.
    pub memberships: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct UpdatePlan {
    pub before: Person,
    pub update: PersonUpdate,
    pub add_memberships: Vec<(String, String)>,
    /// The address changed (not only its case): the old address is told.
    pub email_changed: bool,
    /// Disabled by this row: sessions end.
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub enum Plan {
    Create(Box<CreatePlan>),
    Update(Box<UpdatePlan>),
    Unchanged,
    Failed,
}

#[derive(Debug, Clone)]
pub struct PlannedRow {
    pub line: u64,
    pub label: String,
    pub plan: Plan,
    pub issues: Vec<ImportIssue>,
    /// Invite the person once the row is applied.
    pub invite: bool,
}

impl PlannedRow {
    pub fn warnings(&self) -> u64 {
        self.issues
            .iter()
            .filter(|i| i.severity == Severity::Warning)
            .count() as u64
    }
}

pub fn plan_row(row: ParsedRow, lookup: &BatchLookup, ctx: &PlanContext<'_>) -> PlannedRow {
    let ParsedRow {
        line,
        label,
        username,
        first_name,
        last_name,
        email,
        password,
        enabled,
        onboard,
        profile,
        groups,
        mut issues,
    } = row;
    let mut out = PlannedRow {
        line,
        label: label.clone(),
        plan: Plan::Failed,
        issues: Vec::new(),
        invite: false,
    };
    let name = |c: Column| ctx.header.name(c).to_owned();
    let mut push = |column: Column, severity: Severity, code: &str, message: String| {
        issues.push(issue(line, &label, &name(column), severity, code, message));
    };

    let Some(username) = username else {
        out.issues = issues;
        return out;
    };

    // Groups that do not exist are skipped with a warning.
    let mut wanted = Vec::new();
    for (path, role) in groups {
        if lookup.groups.contains(&path) {
            wanted.push((path, role));
        } else {
            let shown = super::row::report_text(&path, 100);
            push(
                Column::Groups,
                Severity::Warning,
                "unknown_group",
                format!("There is no group {shown}; this membership was skipped."),
            );
        }
    }

    let email_owner = |email: &Email| lookup.email_owners.get(&email.key());

    match lookup.people.get(username.as_str()) {
        None => {
            if username.is_reserved_word() || lookup.deleted.contains(username.as_str()) {
                push(
                    Column::UserName,
                    Severity::Error,
                    "username_reserved",
                    "This username is reserved (a reserved word, or a deleted account's); \
                     choose another."
                        .into(),
                );
            }
            for (column, empty) in [
                (Column::FirstName, first_name == Cell::Empty),
                (Column::LastName, last_name == Cell::Empty),
                (Column::Email, email == Cell::Empty),
            ] {
                if empty {
                    push(
                        column,
                        Severity::Error,
                        "required",
                        "A new person needs this value.".into(),
                    );
                }
            }
            if let Cell::Valid(e) = &email {
                if let Some((_, owner)) = email_owner(e) {
                    push(
                        Column::Email,
                        Severity::Error,
                        "email_taken",
                        format!("Another account ({owner}) already uses this email address."),
                    );
                }
            }
            let password = password.and_then(|p| {
                match Password::parse(&p, ctx.policy, Some(username.as_str())) {
                    Ok(p) => Some(p),
                    Err(errs) => {
                        for e in errs {
                            push(Column::Password, Severity::Error, e.code, e.message);
                        }
                        None
                    }
                }
            });
            let enabled = enabled.unwrap_or(true);
            if onboard && !enabled {
                push(
                    Column::OnboardUser,
                    Severity::Warning,
                    "not_invitable",
                    "A disabled account cannot be invited; enable it, then invite.".into(),
                );
            }
            let mut memberships = vec![(USERS.to_owned(), "member".to_owned())];
            for (path, role) in wanted {
                if path == USERS {
                    memberships[0].1 = role;
                } else {
                    memberships.push((path, role));
                }
            }
            let has_errors = issues.iter().any(|i| i.severity == Severity::Error);
            out.issues = issues;
            if let (Cell::Valid(first_name), Cell::Valid(last_name), Cell::Valid(email), false) =
                (first_name, last_name, email, has_errors)
            {
                out.invite = onboard && enabled;
                out.plan = Plan::Create(Box::new(CreatePlan {
                    username,
                    first_name,
                    last_name,
                    email,
                    password,
                    enabled,
                    profile,
                    memberships,
                }));
            }
            out
        }
        Some((person, memberships)) => {
            if person.source == Source::Ldap {
                push(
                    Column::UserName,
                    Severity::Error,
                    "read_only",
                    "This account is synchronised from LDAP and cannot be changed here.".into(),
                );
            }
            let mut update = PersonUpdate::from_person(person);
            if let Cell::Valid(n) = first_name {
                update.first_name = n.into_string();
            }
            if let Cell::Valid(n) = last_name {
                update.last_name = n.into_string();
            }
            if let Cell::Valid(e) = &email {
                if let Some((owner_id, owner)) = email_owner(e) {
                    if *owner_id != person.id {
                        push(
                            Column::Email,
                            Severity::Error,
                            "email_taken",
                            format!("Another account ({owner}) already uses this email address."),
                        );
                    }
                }
                update.email = e.as_str().to_owned();
            }
            match enabled {
                Some(false) if person.enabled => {
                    if ctx.actor_id == Some(person.id) {
                        push(
                            Column::Enabled,
                            Severity::Error,
                            "self",
                            "You cannot disable your own account.".into(),
                        );
                    } else if person.super_user {
                        push(
                            Column::Enabled,
                            Severity::Error,
                            "super_user",
                            "The super user cannot be disabled.".into(),
                        );
                    }
                    update.enabled = false;
                }
                Some(v) => update.enabled = v,
                None => {}
            }
            update.profile = person.profile.merged_with(&profile);
            let mut add_memberships = Vec::new();
            for (path, role) in wanted {
                match memberships.iter().find(|m| m.group == path) {
                    None => add_memberships.push((path, role)),
                    Some(m) if m.role != role => push(
                        Column::Groups,
                        Severity::Warning,
                        "membership_kept",
                        format!(
                            "Already {} of {}; an import only adds memberships, so the role \
                             was left as it is.",
                            m.role, m.group
                        ),
                    ),
                    Some(_) => {}
                }
            }
            let mut invite = false;
            if onboard && person.invited_at.is_none() {
                let mut after = person.clone();
                after.enabled = update.enabled;
                match check_invitable(&after) {
                    Ok(()) => invite = true,
                    Err(crate::ServiceError::State { code, message })
                        if code == "not_invitable" =>
                    {
                        push(Column::OnboardUser, Severity::Warning, code, message)
                    }
                    Err(_) => {} // joined or connected already: nothing to send
                }
            }
            out.issues = issues;
            if out.issues.iter().any(|i| i.severity == Severity::Error) {
                return out;
            }
            let changed = update.first_name != person.first_name
                || update.last_name != person.last_name
                || update.email != person.email
                || update.enabled != person.enabled
                || update.profile != person.profile;
            out.invite = invite;
            out.plan = if changed || !add_memberships.is_empty() || invite {
                Plan::Update(Box::new(UpdatePlan {
                    email_changed: !update.email.eq_ignore_ascii_case(&person.email),
                    disabled: person.enabled && !update.enabled,
                    before: person.clone(),
                    update,
                    add_memberships,
                }))
            } else {
                Plan::Unchanged
            };
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::csv_stream::parse_all;
    use crate::import::row::{parse_row, SeenKeys};
    use crate::people::PersonType;
    use time::OffsetDateTime;

    const HEADER: &str =
        "userName,firstName,lastName,password,email,enabled,onboardUser,groups,position\n";

    fn person(id: i64, username: &str, email: &str) -> Person {
        Person {
            id,
            username: username.into(),
            first_name: "Stored".into(),
            last_name: "Person".into(),
            email: email.into(),
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
            profile: Profile {
                position: Some("Engineer".into()),
                ..Profile::default()
            },
            invitation_delivery: None,
        }
    }

    fn lookup(people: Vec<Person>) -> BatchLookup {
        let email_owners = people
            .iter()
            .map(|p| (p.email.to_lowercase(), p.id, p.username.clone()))
            .collect();
        ImportLookup {
            people: people
                .into_iter()
                .map(|p| {
                    let m = vec![Membership {
                        role: "member".into(),
                        group: USERS.into(),
                        group_label: "Users".into(),
                    }];
                    (p, m)
                })
                .collect(),
            email_owners,
            deleted: vec!["gone.person".into()],
            groups: vec![USERS.into(), "/spaces/sales".into()],
        }
        .into()
    }

    fn plan(rows: &str, lookup: &BatchLookup, actor_id: Option<i64>) -> Vec<PlannedRow> {
        let records = parse_all(format!("{HEADER}{rows}").as_bytes()).unwrap();
        let header = Header::parse(&records[0].fields).unwrap();
        let policy = PasswordPolicy::default();
        let ctx = PlanContext {
            header: &header,
            policy: &policy,
            actor_id,
        };
        let mut seen = SeenKeys::default();
        records[1..]
            .iter()
            .map(|r| plan_row(parse_row(&header, r, &mut seen), lookup, &ctx))
            .collect()
    }

    fn codes(row: &PlannedRow) -> Vec<&str> {
        row.issues.iter().map(|i| i.code.as_str()).collect()
    }

    #[test]
    fn a_new_username_creates_a_member_of_the_users_group() {
        let rows = plan(
            "jdoe,John,Doe,a-long-enough-secret,j@x.org,,true,manager:/spaces/sales,\n",
            &lookup(vec![]),
            None,
        );
        let Plan::Create(c) = &rows[0].plan else {
            panic!("{:?}", rows[0])
        };
        assert!(c.enabled);
        assert!(c.password.is_some());
        assert_eq!(
            c.memberships,
            [
                (USERS.to_owned(), "member".to_owned()),
                ("/spaces/sales".to_owned(), "manager".to_owned())
            ]
        );
        assert!(rows[0].invite);
    }

    #[test]
    fn a_new_username_whose_email_belongs_to_another_account_is_an_error() {
        let rows = plan(
            "newbie,New,Person,,taken@x.org,,,,\n",
            &lookup(vec![person(1, "owner", "Taken@x.org")]),
            None,
        );
        assert!(matches!(rows[0].plan, Plan::Failed));
        assert_eq!(codes(&rows[0]), ["email_taken"]);
        assert!(rows[0].issues[0].message.contains("owner"));
    }

    #[test]
    fn an_existing_username_whose_new_email_belongs_to_another_account_is_an_error() {
        let rows = plan(
            "alice,,,,bob@x.org,,,,\n",
            &lookup(vec![
                person(1, "alice", "alice@x.org"),
                person(2, "bob", "bob@x.org"),
            ]),
            None,
        );
        assert_eq!(codes(&rows[0]), ["email_taken"]);
    }

    #[test]
    fn a_new_person_needs_names_and_email_and_a_valid_password() {
        let rows = plan("newbie,,,short,,,,,\n", &lookup(vec![]), None);
        assert_eq!(
            codes(&rows[0])[..4],
            ["required", "required", "required", "too_short"]
        );
    }

    #[test]
    fn reserved_and_deleted_usernames_cannot_be_created() {
        let rows = plan(
            "new,New,Person,,n@x.org,,,,\ngone.person,Gone,Person,,g@x.org,,,,\n",
            &lookup(vec![]),
            None,
        );
        assert_eq!(codes(&rows[0]), ["username_reserved"]);
        assert_eq!(codes(&rows[1]), ["username_reserved"]);
    }

    #[test]
    fn on_update_empty_cells_keep_values_and_the_password_is_ignored() {
        let rows = plan(
            "alice,Alicia,,too-short,,,,,\n",
            &lookup(vec![person(1, "alice", "alice@x.org")]),
            None,
        );
        let Plan::Update(u) = &rows[0].plan else {
            panic!("{:?}", rows[0])
        };
        assert!(
            rows[0].issues.is_empty(),
            "the password is not even checked"
        );
        assert_eq!(u.update.first_name, "Alicia");
        assert_eq!(u.update.last_name, "Person");
        assert_eq!(u.update.email, "alice@x.org");
        assert_eq!(u.update.profile.position.as_deref(), Some("Engineer"));
        assert!(u.update.password.is_none());
        assert!(!u.email_changed);
    }

    #[test]
    fn a_row_matching_the_stored_values_is_unchanged() {
        let rows = plan(
            "alice,Stored,Person,whatever-password,alice@x.org,true,,member:/platform/users,Engineer\n",
            &lookup(vec![person(1, "alice", "alice@x.org")]),
            None,
        );
        assert!(matches!(rows[0].plan, Plan::Unchanged), "{:?}", rows[0]);
    }

    #[test]
    fn groups_only_add_memberships_and_keep_existing_roles() {
        let rows = plan(
            "alice,,,,,,,\"manager:/platform/users;member:/spaces/sales;member:/spaces/nowhere\",\n",
            &lookup(vec![person(1, "alice", "alice@x.org")]),
            None,
        );
        let Plan::Update(u) = &rows[0].plan else {
            panic!("{:?}", rows[0])
        };
        assert_eq!(
            u.add_memberships,
            [("/spaces/sales".to_owned(), "member".to_owned())]
        );
        assert_eq!(codes(&rows[0]), ["unknown_group", "membership_kept"]);
    }

    #[test]
    fn nobody_disables_themselves_or_the_super_user_by_import() {
        let mut root = person(1, "root", "root@x.org");
        root.super_user = true;
        let rows = plan(
            "root,,,,,false,,,\nmyself,,,,,false,,,\n",
            &lookup(vec![root, person(2, "myself", "me@x.org")]),
            Some(2),
        );
        assert_eq!(codes(&rows[0]), ["super_user"]);
        assert_eq!(codes(&rows[1]), ["self"]);
    }

    #[test]
    fn onboarding_invites_once_and_warns_when_impossible() {
        let mut invited = person(1, "invited", "i@x.org");
        invited.invited_at = Some(OffsetDateTime::UNIX_EPOCH);
        let mut external = person(2, "guest", "g@x.org");
        external.kind = PersonType::External;
        let rows = plan(
            "invited,,,,,,true,,\nguest,,,,,,true,,\nfresh,,,,f@x.org,,true,,\n",
            &lookup(vec![invited, external, person(3, "fresh", "f@x.org")]),
            None,
        );
        assert!(matches!(rows[0].plan, Plan::Unchanged));
        assert_eq!(codes(&rows[1]), ["not_invitable"]);
        assert!(matches!(rows[1].plan, Plan::Unchanged));
        assert!(rows[2].invite);
        assert!(matches!(rows[2].plan, Plan::Update(_)));
    }

    #[test]
    fn ldap_accounts_are_read_only() {
        let mut ldap = person(1, "ldap.user", "l@x.org");
        ldap.source = Source::Ldap;
        let rows = plan("ldap.user,New,,,,,,,\n", &lookup(vec![ldap]), None);
        assert_eq!(codes(&rows[0]), ["read_only"]);
    }
}
