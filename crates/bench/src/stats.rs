//! Latency percentiles and the machine's single-hash time.

use std::time::{Duration, Instant};

use usher_core::people::{hash_password, Password};

/// Latencies of one series of requests.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The nearest-rank percentile (`q` in 0..=1), in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1].as_secs_f64() * 1000.0
    }

    pub fn p50_p99(&self) -> (f64, f64) {
        (self.percentile_ms(0.50), self.percentile_ms(0.99))
    }
}

/// The machine's single-hash time: the median of 11 hashes, the best of 3 rounds on one
/// thread (a round slowed by other work on the machine is left out; later rounds also run on
/// a thread whose allocator already holds Argon2's 19 MiB, as the server's hashing threads do).
pub fn machine_hash_time() -> Duration {
    (0..3)
        .map(|_| single_hash_time(11))
        .min()
        .expect("three rounds")
}

/// Hashes per second with every core hashing at once and nothing else running: `cores`
/// threads of `count` hashes each, timed from a common start to the last one's end, the best
/// of 2 rounds. What the machine gives when its cores share caches and memory bandwidth, beside
/// the hashing limit's cores ÷ single-hash time.
pub fn all_cores_hash_rate(cores: usize, count: usize) -> f64 {
    let round = || {
        let start = std::sync::Barrier::new(cores + 1);
        let started = std::thread::scope(|scope| {
            for _ in 0..cores {
                scope.spawn(|| {
                    let password = Password::unchecked("Temp-benchmark42");
                    let _ = hash_password(&password);
                    start.wait();
                    for _ in 0..count {
                        let _ = hash_password(&password);
                    }
                });
            }
            start.wait();
            Instant::now()
        });
        // The scope has joined every thread: all hashes are done.
        (cores * count) as f64 / started.elapsed().as_secs_f64()
    };
    round().max(round())
}

/// The median time of `count` Argon2id hashes with Usher's own parameters and code, on this
/// machine, in one thread.
pub fn single_hash_time(count: usize) -> Duration {
    let password = Password::unchecked("Temp-benchmark42");
    // One warm-up hash, not counted.
    let _ = hash_password(&password);
    let mut times: Vec<Duration> = (0..count)
        .map(|_| {
            let start = Instant::now();
            let _ = hash_password(&password);
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.push(Duration::from_millis(ms));
        }
        assert_eq!(l.p50_p99(), (50.0, 99.0));
        let mut one = Latencies::default();
        one.push(Duration::from_millis(7));
        assert_eq!(one.p50_p99(), (7.0, 7.0));
    }
}
