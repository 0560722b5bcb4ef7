//! `/proc/stat` CPU lines → [`CpuTimes`] (proc(5)), and the busy fraction
//! between two samples.
//!
//! ```text
//! cpu  user nice system idle iowait irq softirq steal guest guest_nice
//! cpu0 …
//! ```
//! Times are in clock ticks since boot. `guest` and `guest_nice` are
//! already included in `user` and `nice`, so they are not added again.

/// Aggregate CPU times of the host, clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    /// `cpuN` lines: the number of CPUs the kernel reports.
    pub cores: u32,
}

impl CpuTimes {
    pub fn total(&self) -> u64 {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Time not idle (iowait counts as idle: the CPU was free to encode).
    pub fn busy(&self) -> u64 {
        self.total()
            .saturating_sub(self.idle)
            .saturating_sub(self.iowait)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostStatError {
    #[error("/proc/stat has no aggregate `cpu` line")]
    NoCpuLine,
    #[error(
        "/proc/stat `cpu` line has {found} fields, expected at least 4 (user nice system idle)"
    )]
    TooFewFields { found: usize },
    #[error("/proc/stat `cpu` field {field} is `{value}`, not a number")]
    NotNumber { field: usize, value: String },
}

/// Parses the text of `/proc/stat`.
pub fn parse_host_stat(text: &str) -> Result<CpuTimes, HostStatError> {
    let mut aggregate = None;
    let mut cores = 0u32;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("cpu") => aggregate = Some(words),
            Some(w) if w.starts_with("cpu") && w.len() > 3 => cores = cores.saturating_add(1),
            _ => {}
        }
    }
    let words = aggregate.ok_or(HostStatError::NoCpuLine)?;
    let mut values = Vec::with_capacity(10);
    for (i, w) in words.enumerate() {
        values.push(w.parse::<u64>().map_err(|_| HostStatError::NotNumber {
            field: i + 1,
            value: w.chars().take(32).collect(),
        })?);
    }
    if values.len() < 4 {
        return Err(HostStatError::TooFewFields {
            found: values.len(),
        });
    }
    let at = |i: usize| values.get(i).copied().unwrap_or(0);
    Ok(CpuTimes {
        user: at(0),
        nice: at(1),
        system: at(2),
        idle: at(3),
        iowait: at(4),
        irq: at(5),
        softirq: at(6),
        steal: at(7),
        cores,
    })
}

/// Busy fraction of all CPUs between two samples, 0.0–1.0; `None` when no
/// time passed or a counter went backwards (a wrap or a reboot between
/// samples of a remote host).
pub fn busy_fraction(before: &CpuTimes, after: &CpuTimes) -> Option<f64> {
    let total = after.total().checked_sub(before.total())?;
    let busy = after.busy().checked_sub(before.busy())?;
    (total > 0).then(|| (busy as f64 / total as f64).clamp(0.0, 1.0))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0\n\
        cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0\n\
        cpu1 1335806 39225 547287 13360052 4318 0 5073 0 22155 0\n\
        intr 1462898 0 0\nctxt 2920493\nbtime 1700000000\nprocesses 100\n";

    #[test]
    fn parses_the_aggregate_line_and_counts_cores() {
        let t = parse_host_stat(SAMPLE).expect("parses");
        assert_eq!(t.user, 10132153);
        assert_eq!(t.idle, 46828483);
        assert_eq!(t.steal, 0);
        assert_eq!(t.cores, 2);
        assert_eq!(
            t.total(),
            10132153 + 290696 + 3084719 + 46828483 + 16683 + 25195
        );
    }

    #[test]
    fn old_kernels_with_four_fields() {
        let t = parse_host_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n").expect("parses");
        assert_eq!((t.total(), t.busy(), t.cores), (10, 6, 1));
    }

    #[test]
    fn errors() {
        assert_eq!(parse_host_stat("intr 1\n"), Err(HostStatError::NoCpuLine));
        assert_eq!(
            parse_host_stat("cpu 1 2\n"),
            Err(HostStatError::TooFewFields { found: 2 })
        );
        assert!(matches!(
            parse_host_stat("cpu 1 2 x 4\n"),
            Err(HostStatError::NotNumber { field: 3, .. })
        ));
    }

    #[test]
    fn delta() {
        let a = parse_host_stat("cpu 100 0 100 800 0 0 0 0\ncpu0\ncpu1\n").expect("a");
        let b = parse_host_stat("cpu 250 0 150 1000 0 0 0 0\ncpu0\ncpu1\n").expect("b");
        // 200 busy of 400 ticks.
        assert_eq!(busy_fraction(&a, &b), Some(0.5));
        assert_eq!(busy_fraction(&a, &a), None);
        assert_eq!(busy_fraction(&b, &a), None, "backwards");
    }

    #[test]
    fn this_machine() {
        let Ok(text) = std::fs::read_to_string("/proc/stat") else {
            return;
        };
        let t = parse_host_stat(&text).expect("parses");
        assert!(t.cores >= 1 && t.total() > 0);
    }
}
