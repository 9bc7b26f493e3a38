//! Operational figures for monitoring (`/metrics`): counts only, never anything about a
//! person, so that they may be shown to a caller who has not logged in.

use crate::import::ImportState;
use crate::mail::DeliveryState;
use crate::ServiceError;

use super::Usher;

/// Every state an import job can be in, in the order the figures list them.
const IMPORT_STATES: [ImportState; 5] = [
    ImportState::Receiving,
    ImportState::Queued,
    ImportState::Running,
    ImportState::Done,
    ImportState::Failed,
];

/// Every state an outbox message can be in.
const DELIVERY_STATES: [DeliveryState; 3] = [
    DeliveryState::Queued,
    DeliveryState::Sent,
    DeliveryState::Failed,
];

/// What the store and this node hold, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// People stored (deleted people excluded).
    pub people: u64,
    /// People held by this node's in-memory search index, once it answers searches.
    pub search_index_people: Option<u64>,
    /// Import jobs in each state, every state listed (0 when none).
    pub import_jobs: Vec<(&'static str, u64)>,
    /// Outbox messages in each state, every state listed (0 when none).
    pub outbox_messages: Vec<(&'static str, u64)>,
}

impl Usher {
    /// Counts of people, import jobs and queued mail, for monitoring. No access check: they
    /// say nothing about anyone.
    pub async fn stats(&self) -> Result<Stats, ServiceError> {
        let people = self.store.count_people().await?;
        let queues = self.store.queue_counts().await?;
        let count_of = |rows: &[(String, u64)], state: &str| {
            rows.iter()
                .filter(|(s, _)| s == state)
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        Ok(Stats {
            people,
            search_index_people: self.search_index_len(),
            import_jobs: IMPORT_STATES
                .iter()
                .map(|s| (s.as_str(), count_of(&queues.imports, s.as_str())))
                .collect(),
            outbox_messages: DELIVERY_STATES
                .iter()
                .map(|s| (s.as_str(), count_of(&queues.outbox, s.as_str())))
                .collect(),
        })
    }
}
