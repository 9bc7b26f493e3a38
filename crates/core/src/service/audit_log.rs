//! Reading the audit log.

use super::{Actor, Usher};
use crate::audit::{AuditEntry, AuditFilter};
use crate::query::Page;
use crate::ServiceError;

impl Usher {
    pub async fn audit_entries(
        &self,
        actor: &Actor,
        filter: &AuditFilter,
    ) -> Result<Page<AuditEntry>, ServiceError> {
        actor.require_admin()?;
        Ok(self.store.audit_entries(filter).await?)
    }
}
