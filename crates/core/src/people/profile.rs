use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldErrors};

/// Optional profile fields. `None` means "not set"; an empty string is never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub position: Option<String>,
    pub organization: Option<String>,
    pub department: Option<String>,
    pub location: Option<String>,
    pub phone: Option<String>,
    pub manager: Option<String>,
    pub about_me: Option<String>,
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileField {
    Position,
    Organization,
    Department,
    Location,
    Phone,
    Manager,
    AboutMe,
    TimeZone,
}

/// Every profile field with its JSON name and its label.
pub const PROFILE_FIELDS: &[(ProfileField, &str, &str)] = &[
    (ProfileField::Position, "position", "Position"),
    (ProfileField::Organization, "organization", "Organization"),
    (ProfileField::Department, "department", "Department"),
    (ProfileField::Location, "location", "Location"),
    (ProfileField::Phone, "phone", "Phone"),
    (ProfileField::Manager, "manager", "Manager"),
    (ProfileField::AboutMe, "about_me", "About me"),
    (ProfileField::TimeZone, "time_zone", "Time zone"),
];

impl Profile {
    pub fn get(&self, field: ProfileField) -> Option<&String> {
        match field {
            ProfileField::Position => self.position.as_ref(),
            ProfileField::Organization => self.organization.as_ref(),
            ProfileField::Department => self.department.as_ref(),
            ProfileField::Location => self.location.as_ref(),
            ProfileField::Phone => self.phone.as_ref(),
            ProfileField::Manager => self.manager.as_ref(),
            ProfileField::AboutMe => self.about_me.as_ref(),
            ProfileField::TimeZone => self.time_zone.as_ref(),
        }
    }

    pub fn slot(&mut self, field: ProfileField) -> &mut Option<String> {
        match field {
            ProfileField::Position => &mut self.position,
            ProfileField::Organization => &mut self.organization,
            ProfileField::Department => &mut self.department,
            ProfileField::Location => &mut self.location,
            ProfileField::Phone => &mut self.phone,
            ProfileField::Manager => &mut self.manager,
            ProfileField::AboutMe => &mut self.about_me,
            ProfileField::TimeZone => &mut self.time_zone,
        }
    }

    /// Trims every field, turns blanks into "not set" and checks lengths (about_me up to 2,000
    /// characters, the others up to 255).
    pub fn normalized(mut self, errors: &mut FieldErrors) -> Self {
        for (field, name, label) in PROFILE_FIELDS {
            let limit = if *field == ProfileField::AboutMe {
                2000
            } else {
                255
            };
            let slot = self.slot(*field);
            if let Some(v) = slot.take() {
                let v = v.trim().to_owned();
                if v.chars().count() > limit {
                    errors.add(
                        &format!("profile.{name}"),
                        FieldError::new(
                            "too_long",
                            format!("{label} has at most {limit} characters."),
                        ),
                    );
                }
                if !v.is_empty() {
                    *slot = Some(v);
                }
            }
        }
        self
    }

    /// Fields set in `changes` replace those here, an empty string clearing one; fields it
    /// leaves unset stay (PATCH semantics, and CSV update semantics for empty cells).
    pub fn merged_with(&self, changes: &Profile) -> Profile {
        let mut out = self.clone();
        for (field, _, _) in PROFILE_FIELDS {
            if let Some(v) = changes.get(*field) {
                *out.slot(*field) = (!v.trim().is_empty()).then(|| v.clone());
            }
        }
        out
    }
}
