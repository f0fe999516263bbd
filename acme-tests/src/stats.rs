//! Small helpers for load measurements.

use std::time::Duration;

/// Latency samples in microseconds, summarised on demand.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    us: Vec<u64>,
}

/// Summary of a [`Samples`] set, in milliseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Samples {
    /// An empty set with room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        Samples {
            us: Vec::with_capacity(n),
        }
    }

    /// Add one sample.
    pub fn push(&mut self, d: Duration) {
        self.us.push(d.as_micros() as u64);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.us.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.us.is_empty()
    }

    /// Percentiles by the nearest-rank method; all zero when empty.
    pub fn summary(&self) -> Summary {
        if self.us.is_empty() {
            return Summary::default();
        }
        let mut v = self.us.clone();
        v.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        let rank = |p: f64| {
            let r = (p * v.len() as f64).ceil() as usize;
            v[r.clamp(1, v.len()) - 1]
        };
        Summary {
            count: v.len(),
            mean_ms: ms(v.iter().sum::<u64>()) / v.len() as f64,
            p50_ms: ms(rank(0.50)),
            p90_ms: ms(rank(0.90)),
            p99_ms: ms(rank(0.99)),
            max_ms: ms(*v.last().unwrap()),
        }
    }
}

/// CPU time (user + system) this process has used so far, from
/// `/proc/self/stat` (Linux; `None` elsewhere). Assumes USER_HZ = 100.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s = Samples::default();
        for i in 1..=100 {
            s.push(Duration::from_millis(i));
        }
        let m = s.summary();
        assert_eq!(m.count, 100);
        assert_eq!(m.p50_ms, 50.0);
        assert_eq!(m.p99_ms, 99.0);
        assert_eq!(m.max_ms, 100.0);
        assert_eq!(Samples::default().summary().p50_ms, 0.0);
    }

    #[test]
    fn cpu_time_readable() {
        #[cfg(target_os = "linux")]
        assert!(process_cpu_time().is_some());
    }
}
