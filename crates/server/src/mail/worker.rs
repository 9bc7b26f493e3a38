//! The outbox worker: a task inside `usher serve` that claims due messages from the store,
//! hands each to the [`Transport`], and records the outcome — sent (the store forgets the
//! bodies), or failed and retried on the schedule of [`next_attempt`] until it gives up after
//! a day.
//!
//! Several workers (one per node) may share a PostgreSQL outbox: the store's claim hands each
//! due message to one worker only, for a lease long enough to send a whole batch. A worker that
//! dies mid-batch only delays its messages until the lease ends; a message whose acceptance was
//! lost may then go out twice, which is why SMTP delivery is at-least-once and the
//! `Message-ID` is stable.
//!
//! Times come from the injected [`Clock`], so tests move retries forward without sleeping;
//! only the idle poll and the send timeout use the runtime's timer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use usher_core::clock::Clock;
use usher_core::mail::{next_attempt, OutboxMessage};
use usher_core::store::{Store, StoreError};

use super::transport::{Transport, TransportError};

/// The longest error text kept per message: SMTP servers can answer with whole paragraphs.
const MAX_ERROR_LEN: usize = 500;

/// How a worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Messages claimed at once; a full batch is followed by another at once.
    pub batch_size: u32,
    /// How long claimed messages stay reserved to this worker. Must exceed
    /// `batch_size × send_timeout`, else another node could claim a message still being sent;
    /// the worker also stops a batch early rather than send past its lease.
    pub lease: time::Duration,
    /// How often an idle worker looks for due messages (retries become due on their own,
    /// without anyone calling [`WorkerHandle::notify`]).
    pub poll_interval: Duration,
    /// The longest one delivery may take before it counts as failed.
    pub send_timeout: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            batch_size: 10,
            lease: time::Duration::minutes(15),
            poll_interval: Duration::from_secs(5),
            send_timeout: Duration::from_secs(60),
        }
    }
}

/// The running worker. Dropping the handle leaves the worker running until the runtime stops;
/// [`WorkerHandle::shutdown`] stops it cleanly.
pub struct WorkerHandle {
    wake: Arc<Notify>,
    stop: Arc<StopSignal>,
    task: JoinHandle<()>,
}

impl WorkerHandle {
    /// Asks the worker to look for due messages now (after queuing one), rather than at its
    /// next poll. Cheap; pokes while it is busy are folded into one more pass.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Stops the worker: the message being sent is finished and recorded, the rest of its
    /// batch stays claimed until the lease ends (then any node sends it). Returns when the
    /// task has ended.
    pub async fn shutdown(self) {
        self.stop.flag.store(true, Ordering::SeqCst);
        // `notify_one` keeps a permit if the worker is not waiting yet, so the stop is never
        // missed between its check of the flag and its wait.
        self.stop.notify.notify_one();
        if let Err(e) = self.task.await {
            if e.is_panic() {
                tracing::error!("the mail worker panicked: {e}");
            }
        }
    }
}

struct StopSignal {
    flag: AtomicBool,
    notify: Notify,
}

impl StopSignal {
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// Starts the outbox worker on the current tokio runtime. `wake` is the signal the services
/// poke after queuing a message (`Usher::outbox_signal`); the worker also polls on its own.
pub fn spawn_worker(
    store: Arc<dyn Store>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    options: WorkerOptions,
) -> WorkerHandle {
    let stop = Arc::new(StopSignal {
        flag: AtomicBool::new(false),
        notify: Notify::new(),
    });
    let worker = Worker {
        store,
        transport,
        clock,
        options,
    };
    let task = tokio::spawn(worker.run(wake.clone(), stop.clone()));
    WorkerHandle { wake, stop, task }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub claimed: usize,
    pub sent: usize,
    /// Failed and scheduled again.
    pub retrying: usize,
    /// Failed for good.
    pub given_up: usize,
    /// Claimed but left to the lease (shutdown, or the lease running out).
    pub left: usize,
}

struct Worker {
    store: Arc<dyn Store>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    options: WorkerOptions,
}

impl Worker {
    async fn run(self, wake: Arc<Notify>, stop: Arc<StopSignal>) {
        tracing::info!(
            "mail worker started: sending through {}",
            self.transport.describe()
        );
        // Whether the last claim failed, so that a store outage is logged once, not per poll.
        let mut store_failing = false;
        while !stop.is_set() {
            let full = match self.deliver(&stop).await {
                Ok(report) => {
                    if store_failing {
                        tracing::info!("mail worker: the store answers again");
                        store_failing = false;
                    }
                    report.claimed > 0 && report.claimed as u32 >= self.options.batch_size
                }
                Err(e) => {
                    if !store_failing {
                        tracing::warn!("mail worker: cannot claim messages: {e}");
                        store_failing = true;
                    }
                    false
                }
            };
            if full || stop.is_set() {
                // More may be due at once: drain before waiting.
                continue;
            }
            tokio::select! {
                () = stop.notify.notified() => {}
                () = wake.notified() => {}
                () = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
        tracing::info!("mail worker stopped");
    }

    async fn deliver(&self, stop: &StopSignal) -> Result<BatchReport, StoreError> {
        deliver_batch(
            self.store.as_ref(),
            self.transport.as_ref(),
            self.clock.as_ref(),
            &self.options,
            || stop.is_set(),
        )
        .await
    }
}

/// One pass of the worker: claims up to `batch_size` due messages and delivers them one after
/// the other, checking `stop` between messages. Public so that a test or a command can drain
/// the outbox without a background task.
///
/// Errors only when the claim itself fails; a failed delivery is recorded on its message, and
/// a failure to record an outcome is logged (the lease then brings the message back).
pub async fn deliver_batch(
    store: &dyn Store,
    transport: &dyn Transport,
    clock: &dyn Clock,
    options: &WorkerOptions,
    stop: impl Fn() -> bool,
) -> Result<BatchReport, StoreError> {
    let now = clock.now();
    let lease_until = now + options.lease;
    let messages = store
        .claim_messages(now, options.batch_size.max(1), lease_until)
        .await?;
    let mut report = BatchReport {
        claimed: messages.len(),
        ..BatchReport::default()
    };
    let send_timeout =
        time::Duration::try_from(options.send_timeout).unwrap_or(time::Duration::MAX);
    for message in &messages {
        // Past the lease another node may claim the message; sending it here too would send
        // it twice, so leave it to whoever claims it next.
        if stop() || clock.now() + send_timeout > lease_until {
            report.left += 1;
            continue;
        }
        match deliver_one(store, transport, clock, options, message).await {
            Outcome::Sent => report.sent += 1,
            Outcome::Retrying => report.retrying += 1,
            Outcome::GivenUp => report.given_up += 1,
        }
    }
    if report.left > 0 {
        tracing::info!(
            "mail worker: {} claimed message(s) left until their lease ends",
            report.left
        );
    }
    Ok(report)
}

enum Outcome {
    Sent,
    Retrying,
    GivenUp,
}

async fn deliver_one(
    store: &dyn Store,
    transport: &dyn Transport,
    clock: &dyn Clock,
    options: &WorkerOptions,
    message: &OutboxMessage,
) -> Outcome {
    let result = match tokio::time::timeout(options.send_timeout, transport.send(message)).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::temporary(format!(
            "no answer within {} seconds",
            options.send_timeout.as_secs()
        ))),
    };
    let now = clock.now();
    match result {
        Ok(()) => {
            if let Err(e) = store.message_sent(message.id, now).await {
                tracing::error!(
                    message_id = message.id,
                    "mail delivered but not recorded as sent ({e}); it may go out again \
                     when its lease ends"
                );
            }
            Outcome::Sent
        }
        Err(error) => {
            let attempt = message.attempts + 1;
            let retry_at = if error.is_permanent() {
                None
            } else {
                next_attempt(message.created_at, attempt, now)
            };
            let text = truncate(&error.to_string(), MAX_ERROR_LEN);
            match retry_at {
                Some(at) => tracing::warn!(
                    message_id = message.id,
                    attempt,
                    retry_at = %at,
                    "mail delivery failed: {text}"
                ),
                None => tracing::error!(
                    message_id = message.id,
                    attempt,
                    "mail delivery failed; giving up: {text}"
                ),
            }
            if let Err(e) = store.message_failed(message.id, &text, retry_at).await {
                tracing::error!(
                    message_id = message.id,
                    "cannot record the failed delivery ({e}); the message is tried again \
                     when its lease ends"
                );
            }
            if retry_at.is_some() {
                Outcome::Retrying
            } else {
                Outcome::GivenUp
            }
        }
    }
}

/// At most `max` bytes, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééé", 3), "é…");
    }

    #[test]
    fn the_default_lease_covers_a_whole_batch() {
        let o = WorkerOptions::default();
        let batch = o.send_timeout * o.batch_size;
        assert!(time::Duration::try_from(batch).unwrap() < o.lease);
    }
}
