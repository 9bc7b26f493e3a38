//! The resumer of background mass actions: on every node, a task that looks every few seconds
//! for a job whose node stopped mid-way (its lease ran out) and runs it on here, from its
//! first chunk not yet recorded (`Usher::resume_stalled_jobs`).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use usher_core::service::Usher;

/// How often a node looks for stalled jobs. A job left by a stopped node is taken over at most
/// this long after its lease (`usher_core::service::bulk::JOB_LEASE`) runs out.
pub const JOB_RESUME_EVERY: Duration = Duration::from_secs(10);

pub struct JobResumerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl JobResumerHandle {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            if e.is_panic() {
                tracing::error!("the job resumer panicked: {e}");
            }
        }
    }
}

/// Starts the resumer on the current runtime.
pub fn spawn_job_resumer(usher: Usher, every: Duration) -> JobResumerHandle {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut failing = false;
        loop {
            match usher.resume_stalled_jobs().await {
                Ok(_) => failing = false,
                Err(e) => {
                    // Said once until it works again: the store may be down for a while.
                    if !failing {
                        tracing::warn!("cannot look for stalled mass actions: {e}");
                        failing = true;
                    }
                }
            }
            tokio::select! {
                _ = stopped.changed() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    });
    JobResumerHandle { stop, task }
}
