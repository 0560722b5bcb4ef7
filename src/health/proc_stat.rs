//! `/proc/PID/stat` text → the fields health needs (proc(5)).
//!
//! The line is `pid (comm) state ppid …`; `comm` is the executable name,
//! up to 15 bytes, and may contain spaces and parentheses (`(a) b)` is a
//! valid comm), so the fields after it are found from the **last** `)`.

/// The fields of `/proc/PID/stat` health and placement use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 1.
    pub pid: i32,
    /// Field 2, without its parentheses.
    pub comm: String,
    /// Field 3: `R` running, `S` sleeping, `D` disk sleep, `T` stopped,
    /// `t` tracing stop, `Z` zombie, `X` dead, `I` idle.
    pub state: char,
    /// Field 14: user-mode CPU time, clock ticks.
    pub utime: u64,
    /// Field 15: kernel-mode CPU time, clock ticks.
    pub stime: u64,
    /// Field 20.
    pub num_threads: u64,
    /// Field 22: start time after boot, clock ticks.
    pub starttime: u64,
}

impl ProcStat {
    /// User + system CPU time, clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime.saturating_add(self.stime)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcStatError {
    #[error("/proc/PID/stat has no `(comm)` field: {text:?}")]
    NoComm { text: String },
    #[error("/proc/PID/stat field {field} ({name}) is missing")]
    Missing { field: usize, name: &'static str },
    #[error("/proc/PID/stat field {field} ({name}) is `{value}`, not a number")]
    NotNumber {
        field: usize,
        name: &'static str,
        value: String,
    },
}

/// Parses the text of `/proc/PID/stat`.
pub fn parse_proc_stat(text: &str) -> Result<ProcStat, ProcStatError> {
    let no_comm = || ProcStatError::NoComm {
        text: text.chars().take(80).collect(),
    };
    let open = text.find('(').ok_or_else(no_comm)?;
    let close = text.rfind(')').ok_or_else(no_comm)?;
    if close < open {
        return Err(no_comm());
    }
    let pid_text = text.get(..open).unwrap_or_default().trim();
    let comm = text.get(open + 1..close).unwrap_or_default().to_owned();
    // Fields 3.. after the comm; index 0 is field 3.
    let rest: Vec<&str> = text
        .get(close + 1..)
        .unwrap_or_default()
        .split_ascii_whitespace()
        .collect();
    let field = |n: usize, name: &'static str| -> Result<&str, ProcStatError> {
        rest.get(n - 3)
            .copied()
            .ok_or(ProcStatError::Missing { field: n, name })
    };
    let number = |n: usize, name: &'static str| -> Result<u64, ProcStatError> {
        let v = field(n, name)?;
        v.parse().map_err(|_| ProcStatError::NotNumber {
            field: n,
            name,
            value: v.chars().take(32).collect(),
        })
    };
    let pid = pid_text.parse().map_err(|_| ProcStatError::NotNumber {
        field: 1,
        name: "pid",
        value: pid_text.chars().take(32).collect(),
    })?;
    let state_text = field(3, "state")?;
    let mut chars = state_text.chars();
    let state = match (chars.next(), chars.next()) {
        (Some(c), None) => c,
        _ => {
            return Err(ProcStatError::NotNumber {
                field: 3,
                name: "state",
                value: state_text.chars().take(32).collect(),
            });
        }
    };
    Ok(ProcStat {
        pid,
        comm,
        state,
        utime: number(14, "utime")?,
        stime: number(15, "stime")?,
        num_threads: number(20, "num_threads")?,
        starttime: number(22, "starttime")?,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A real line from this machine (`cat /proc/self/stat` of an ffmpeg).
    const FFMPEG: &str = "12345 (ffmpeg) S 1200 12345 1200 34816 12345 4194304 5000 0 0 0 \
        250 31 0 0 20 0 3 0 987654 200000000 8000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn plain_line() {
        let s = parse_proc_stat(FFMPEG).expect("parses");
        assert_eq!(s.pid, 12345);
        assert_eq!(s.comm, "ffmpeg");
        assert_eq!(s.state, 'S');
        assert_eq!((s.utime, s.stime, s.cpu_ticks()), (250, 31, 281));
        assert_eq!(s.num_threads, 3);
        assert_eq!(s.starttime, 987654);
    }

    #[test]
    fn comm_with_spaces_and_parens() {
        let line = FFMPEG.replace("(ffmpeg) S", "(a) b (c)) T");
        let s = parse_proc_stat(&line).expect("parses");
        assert_eq!(s.comm, "a) b (c)");
        assert_eq!(s.state, 'T');
        assert_eq!(s.utime, 250);
    }

    #[test]
    fn real_proc_self_stat() {
        // Reading a file is the shell's job; this only checks the format on
        // the machine the tests run on.
        let Ok(text) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        let s = parse_proc_stat(&text).expect("parses");
        assert_eq!(s.pid, i32::try_from(std::process::id()).unwrap_or(0));
        assert!(matches!(s.state, 'R' | 'S'));
    }

    #[test]
    fn broken_lines_are_errors() {
        assert!(matches!(
            parse_proc_stat(""),
            Err(ProcStatError::NoComm { .. })
        ));
        assert!(matches!(
            parse_proc_stat("1 )x( S"),
            Err(ProcStatError::NoComm { .. })
        ));
        assert!(matches!(
            parse_proc_stat("1 (x) S 1 2"),
            Err(ProcStatError::Missing { field: 14, .. })
        ));
        assert!(matches!(
            parse_proc_stat("x (y) S"),
            Err(ProcStatError::NotNumber { field: 1, .. })
        ));
        let bad = FFMPEG.replace(" 250 31 ", " 25x 31 ");
        assert_eq!(
            parse_proc_stat(&bad)
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("/proc/PID/stat field 14 (utime) is `25x`, not a number")
        );
        assert!(parse_proc_stat(&FFMPEG.replace(") S ", ") SS ")).is_err());
    }
}
