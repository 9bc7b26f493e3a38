//! A real `usher serve`, spawned by the benchmark on 127.0.0.1 and a free port, with its
//! resident memory sampled from `/proc` every 100 ms, and killed at the end (also when the
//! benchmark fails half-way: [`Drop`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// How the server is started.
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub database_url: String,
    /// Working directory: the mail outbox files go under it, the log too.
    pub work_dir: PathBuf,
    pub admin_password: String,
}

impl Launch {
    /// The `usher` command with this configuration and nothing from our own `USHER_*`.
    fn command(&self, bind: &str) -> Command {
        let mut cmd = Command::new(&self.binary);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("USHER_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("USHER_DATABASE_URL", &self.database_url)
            .env("USHER_BIND", bind)
            .env("USHER_ADMIN_PASSWORD", &self.admin_password)
            .current_dir(&self.work_dir)
            .stdin(Stdio::null());
        cmd
    }
}

/// Resident-set figures in KiB, updated by the sampler.
#[derive(Default)]
struct Rss {
    peak: AtomicU64,
    /// Every sample, to tell which step the peak belongs to (10 a second: a few hundred
    /// thousand at most, even in a long run).
    timeline: Mutex<Vec<(Instant, u64)>>,
    stop: AtomicBool,
}

pub struct Server {
    child: Mutex<Child>,
    pub pid: u32,
    pub base_url: String,
    pub spawned_at: Instant,
    rss: Arc<Rss>,
    sampler: Option<tokio::task::JoinHandle<()>>,
    log_path: PathBuf,
    launch: Launch,
    bind: String,
}

/// `VmRSS` or `VmHWM` of a process, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// CPU time a process has used: in all, and on its hashing threads (`usher-hash-N`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    pub all: Duration,
    pub hashing: Duration,
}

impl CpuTime {
    /// What `self` used since `earlier`, as the table says it beside a figure of `hashes`
    /// hashes over `elapsed`: how many cores the server kept busy, and the CPU time each hash
    /// took on its thread, against `alone` (one hash with nothing else running).
    pub fn detail_since(
        &self,
        earlier: CpuTime,
        elapsed: Duration,
        hashes: usize,
        cores: usize,
        alone: Duration,
    ) -> String {
        let all = self.all.saturating_sub(earlier.all).as_secs_f64();
        let hashing = self.hashing.saturating_sub(earlier.hashing).as_secs_f64();
        format!(
            "server busy {:.2} of {cores} cores, {:.1} ms of CPU per hash on its hashing \
             threads ({:.1} ms alone)",
            all / elapsed.as_secs_f64(),
            1000.0 * hashing / hashes.max(1) as f64,
            alone.as_secs_f64() * 1000.0
        )
    }
}

/// User and system time of one `/proc/.../stat` line (fields 14 and 15), in clock ticks.
fn stat_ticks(stat: &str) -> Option<u64> {
    // After the command's name, which may hold spaces, in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second on Linux whatever the kernel's HZ.
const TICK: Duration = Duration::from_millis(10);

/// The CPU time of process `pid` (zero for what `/proc` does not tell).
pub fn cpu_time(pid: u32) -> CpuTime {
    let ticks = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| stat_ticks(&s))
            .unwrap_or(0)
    };
    let all = ticks(Path::new(&format!("/proc/{pid}/stat")));
    let mut hashing = 0;
    // One entry per thread: a few dozen.
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with("usher-hash") {
                hashing += ticks(&task.path().join("stat"));
            }
        }
    }
    CpuTime {
        all: TICK * u32::try_from(all).unwrap_or(u32::MAX),
        hashing: TICK * u32::try_from(hashing).unwrap_or(u32::MAX),
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Server {
    /// Spawns `usher serve`; call [`Server::wait_ready`] next.
    pub fn spawn(launch: &Launch) -> anyhow::Result<Self> {
        let port = free_port()?;
        let bind = format!("127.0.0.1:{port}");
        let log_path = launch.work_dir.join(format!("usher-serve-{port}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = launch.command(&bind);
        cmd.arg("serve")
            .stdout(log.try_clone()?)
            .stderr(Stdio::from(log));
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} serve", launch.binary.display()))?;
        let pid = child.id();
        let rss = Arc::new(Rss::default());
        let sampler = {
            let rss = rss.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                // Bounded by the server's life: the loop ends when /proc no longer has it, or
                // when the server is stopped.
                while !rss.stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let Some(kib) = proc_status_kib(pid, "VmRSS") else {
                        break;
                    };
                    rss.peak.fetch_max(kib, Ordering::Relaxed);
                    rss.timeline
                        .lock()
                        .expect("timeline lock")
                        .push((Instant::now(), kib));
                }
            })
        };
        Ok(Self {
            child: Mutex::new(child),
            pid,
            base_url: format!("http://{bind}"),
            spawned_at,
            rss,
            sampler: Some(sampler),
            log_path,
            launch: launch.clone(),
            bind,
        })
    }

    /// The CPU time the server has used so far.
    pub fn cpu_time(&self) -> CpuTime {
        cpu_time(self.pid)
    }

    /// The last lines the server wrote, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("(server log {}:)\n{tail}", self.log_path.display())
    }

    /// An error when the server has exited.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        let mut child = self.child.lock().expect("child lock");
        match child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("the server died ({status})\n{}", self.log_tail()),
        }
    }

    /// Polls `/readyz` every 5 ms until it answers 200; the time since the spawn.
    pub async fn wait_ready(&self, limit: Duration) -> anyhow::Result<Duration> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let url = format!("{}/readyz", self.base_url);
        let deadline = self.spawned_at + limit;
        while Instant::now() < deadline {
            self.check_alive()?;
            if let Ok(response) = client.get(&url).send().await {
                if response.status() == reqwest::StatusCode::OK {
                    return Ok(self.spawned_at.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!(
            "the server was not ready within {limit:?}\n{}",
            self.log_tail()
        )
    }

    /// A new API token for `admin`, made by `usher token create` on the same store.
    pub async fn admin_token(&self) -> anyhow::Result<String> {
        let mut cmd = self.launch.command(&self.bind);
        cmd.args(["token", "create", "admin", "--name", "usher-bench"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("running usher token create")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("usher token create did not finish within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let output = child.wait_with_output()?;
        if !status.success() {
            bail!(
                "usher token create failed ({status}): {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let token = String::from_utf8(output.stdout)?.trim().to_owned();
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(anyhow!("usher token create printed no token"));
        }
        Ok(token)
    }

    pub fn rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmRSS")
    }

    /// The highest sample taken since `start` (the current figure included).
    pub fn peak_since_kib(&self, start: Instant) -> u64 {
        let timeline = self.rss.timeline.lock().expect("timeline lock");
        let sampled = timeline
            .iter()
            .rev()
            .take_while(|(t, _)| *t >= start)
            .map(|(_, kib)| *kib)
            .max()
            .unwrap_or(0);
        sampled.max(self.rss_kib().unwrap_or(0))
    }

    /// Kills the server; the peak sampled over its life and the kernel's high-water mark.
    pub async fn stop(mut self) -> (u64, Option<u64>) {
        let hwm = proc_status_kib(self.pid, "VmHWM");
        if let Some(now) = self.rss_kib() {
            self.rss.peak.fetch_max(now, Ordering::Relaxed);
        }
        self.rss.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), sampler).await;
        }
        self.kill();
        (self.rss.peak.load(Ordering::Relaxed), hwm)
    }

    fn kill(&self) {
        let mut child = self.child.lock().expect("child lock");
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.rss.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            sampler.abort();
        }
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_a_name_with_spaces() {
        let line = "4242 (usher hash) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0";
        assert_eq!(stat_ticks(line), Some(1290));
        assert_eq!(stat_ticks("4242 (cut"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        // Spins until /proc counts a tick, for 5 s at most however loaded the machine.
        let spin = Instant::now();
        let mut cpu = cpu_time(std::process::id());
        while cpu.all == Duration::ZERO && spin.elapsed() < Duration::from_secs(5) {
            for i in 0..100_000u64 {
                std::hint::black_box(i);
            }
            cpu = cpu_time(std::process::id());
        }
        assert!(cpu.all > Duration::ZERO, "{cpu:?}");
        assert_eq!(cpu.hashing, Duration::ZERO);
    }
}
