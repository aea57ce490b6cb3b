//! Process and machine statistics from Linux's `/proc`: what the proxy
//! exports as `process_*` metrics and what the bench samples around a load
//! phase.
//!
//! Every function reads its files when called (nothing is cached) and
//! allocates little: [`process_stats`] reads the four files it needs into one
//! reused buffer, and the paths of the current process are static strings.
//! The `parse_*` functions work on text already read, for tests and for
//! callers that hold their own buffer.
//!
//! Clock ticks are converted with the kernel's real `CLK_TCK`
//! ([`clock_ticks_per_second`]), not an assumed 100.

use std::borrow::Cow;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Process {
    /// The calling process (`/proc/self`).
    #[default]
    Current,
    /// Process `pid` (`/proc/PID`).
    Pid(u32),
}

/// A `/proc` file could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// Reading failed (no such process, no `/proc`, permission).
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not have the expected format.
    #[error("unexpected contents in {file}: {what}")]
    Format {
        /// The file's name (`stat`, `/proc/stat`...).
        file: &'static str,
        /// What was wrong.
        what: &'static str,
    },
}

/// Kernel clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of the
/// CPU times and start times in `/proc`.
pub fn clock_ticks_per_second() -> u64 {
    // rustix reads AT_CLKTCK from the auxiliary vector: no `unsafe` here.
    rustix::param::clock_ticks_per_second().max(1)
}

/// The per-process files this module reads.
#[derive(Clone, Copy)]
enum File {
    Stat,
    Status,
    Limits,
    Fd,
}

impl File {
    fn name(self) -> &'static str {
        match self {
            File::Stat => "stat",
            File::Status => "status",
            File::Limits => "limits",
            File::Fd => "fd",
        }
    }
}

impl Process {
    /// The path of one of the process's files, without allocating for the
    /// current process.
    fn path(self, file: File) -> Cow<'static, Path> {
        match (self, file) {
            (Process::Current, File::Stat) => Cow::Borrowed(Path::new("/proc/self/stat")),
            (Process::Current, File::Status) => Cow::Borrowed(Path::new("/proc/self/status")),
            (Process::Current, File::Limits) => Cow::Borrowed(Path::new("/proc/self/limits")),
            (Process::Current, File::Fd) => Cow::Borrowed(Path::new("/proc/self/fd")),
            (Process::Pid(pid), file) => {
                Cow::Owned(PathBuf::from(format!("/proc/{pid}/{}", file.name())))
            }
        }
    }
}

/// Reads `path` into `buf` (cleared first).
fn read_into(path: &Path, buf: &mut String) -> Result<(), ProcError> {
    buf.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .map(|_| ())
        .map_err(|source| ProcError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// The fields of `/proc/PID/stat` this crate uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    /// The state letter (field 3): `R` running, `S` sleeping, `Z` zombie...
    pub state: char,
    /// User-mode CPU time of all threads, in clock ticks (field 14).
    pub utime_ticks: u64,
    /// Kernel-mode CPU time of all threads, in clock ticks (field 15).
    pub stime_ticks: u64,
    /// Number of threads (field 20).
    pub threads: u64,
    /// When the process started, in clock ticks since boot (field 22).
    pub start_ticks: u64,
    /// Virtual memory size in bytes (field 23).
    pub vsize_bytes: u64,
}

impl Stat {
    /// Whether the process has exited but not been reaped yet.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }

    /// User plus system CPU time, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime_ticks.saturating_add(self.stime_ticks)
    }

    /// User plus system CPU time, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu_ticks() as f64 / clock_ticks_per_second() as f64
    }

    /// When the process started, in seconds since the Unix epoch, given the
    /// machine's boot time ([`boot_time_seconds`]).
    pub fn start_time_seconds(&self, boot_time_seconds: u64) -> f64 {
        boot_time_seconds as f64 + self.start_ticks as f64 / clock_ticks_per_second() as f64
    }
}

/// Reads `/proc/PID/stat`.
pub fn stat(process: Process) -> Result<Stat, ProcError> {
    let mut buf = String::new();
    read_into(&process.path(File::Stat), &mut buf)?;
    parse_stat(&buf)
}

/// Parses the text of a `/proc/PID/stat` file.
pub fn parse_stat(text: &str) -> Result<Stat, ProcError> {
    let format = |what| ProcError::Format { file: "stat", what };
    // The command name (field 2) may contain spaces and parentheses, so the
    // fields are counted from the last ')': field 3 (state) comes first.
    let (_, rest) = text
        .rsplit_once(')')
        .ok_or_else(|| format("no ')' after the command name"))?;
    let mut fields = rest.split_whitespace();
    let state = fields
        .next()
        .and_then(|s| s.chars().next())
        .ok_or_else(|| format("no state"))?;
    // The value of field `n`, given that field `at` is next.
    let mut field = |at: &mut usize, n: usize| -> Result<u64, ProcError> {
        let value = fields
            .nth(n - *at)
            .ok_or_else(|| format("line too short"))?;
        *at = n + 1;
        value.parse().map_err(|_| format("non-numeric field"))
    };
    let mut at = 4;
    Ok(Stat {
        state,
        utime_ticks: field(&mut at, 14)?,
        stime_ticks: field(&mut at, 15)?,
        threads: field(&mut at, 20)?,
        start_ticks: field(&mut at, 22)?,
        vsize_bytes: field(&mut at, 23)?,
    })
}

/// Memory figures and thread count from `/proc/PID/status` (each `None`
/// if the kernel did not report it, as for kernel threads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// Current resident set size (`VmRSS`), KiB.
    pub vm_rss_kib: Option<u64>,
    /// Peak resident set size (`VmHWM`), KiB.
    pub vm_hwm_kib: Option<u64>,
    /// Virtual memory size (`VmSize`), KiB.
    pub vm_size_kib: Option<u64>,
    /// Number of threads (`Threads`).
    pub threads: Option<u64>,
}

/// Reads `/proc/PID/status`.
pub fn status(process: Process) -> Result<Status, ProcError> {
    let mut buf = String::new();
    read_into(&process.path(File::Status), &mut buf)?;
    Ok(parse_status(&buf))
}

/// Parses the text of a `/proc/PID/status` file.
pub fn parse_status(text: &str) -> Status {
    let mut status = Status::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let slot = match key {
            "VmRSS:" => &mut status.vm_rss_kib,
            "VmHWM:" => &mut status.vm_hwm_kib,
            "VmSize:" => &mut status.vm_size_kib,
            "Threads:" => &mut status.threads,
            _ => continue,
        };
        *slot = value.parse().ok();
    }
    status
}

/// Whether the process exists and is not a zombie (it has not exited, or
/// has been reaped and is gone: then `false`).
pub fn is_running(process: Process) -> bool {
    stat(process).is_ok_and(|s| !s.is_zombie())
}

/// The number of open file descriptors of the process (entries of
/// `/proc/PID/fd`).
pub fn open_fds(process: Process) -> Result<u64, ProcError> {
    let path = process.path(File::Fd);
    let dir = std::fs::read_dir(&path).map_err(|source| ProcError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(dir.count() as u64)
}

/// The soft limit on open file descriptors (`Max open files` in
/// `/proc/PID/limits`); `None` if unlimited.
pub fn max_fds(process: Process) -> Result<Option<u64>, ProcError> {
    let mut buf = String::new();
    read_into(&process.path(File::Limits), &mut buf)?;
    parse_max_fds(&buf)
}

/// Parses the `Max open files` soft limit out of a `/proc/PID/limits` text;
/// `None` if unlimited.
pub fn parse_max_fds(text: &str) -> Result<Option<u64>, ProcError> {
    let format = |what| ProcError::Format {
        file: "limits",
        what,
    };
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .ok_or_else(|| format("no `Max open files` line"))?;
    match line.split_whitespace().next() {
        Some("unlimited") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| format("non-numeric limit")),
        None => Err(format("no soft limit")),
    }
}

/// When the machine booted, in seconds since the Unix epoch (`btime` in
/// `/proc/stat`).
pub fn boot_time_seconds() -> Result<u64, ProcError> {
    let mut buf = String::new();
    read_into(Path::new("/proc/stat"), &mut buf)?;
    parse_boot_time(&buf)
}

/// Parses `btime` out of a `/proc/stat` text.
pub fn parse_boot_time(text: &str) -> Result<u64, ProcError> {
    let format = |what| ProcError::Format {
        file: "/proc/stat",
        what,
    };
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .ok_or_else(|| format("no btime line"))?
        .trim()
        .parse()
        .map_err(|_| format("non-numeric btime"))
}

/// Machine-wide CPU counters (all CPUs) from the `cpu` line of
/// `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemTicks {
    /// Sum of all accounted states (user through steal).
    pub total: u64,
    /// Idle plus I/O wait.
    pub idle: u64,
    /// Time stolen by the hypervisor.
    pub steal: u64,
}

/// Reads the aggregate `cpu` line of `/proc/stat`.
pub fn system_ticks() -> Result<SystemTicks, ProcError> {
    let mut buf = String::new();
    read_into(Path::new("/proc/stat"), &mut buf)?;
    parse_system_ticks(&buf)
}

/// Parses the aggregate `cpu` line of a `/proc/stat` text.
pub fn parse_system_ticks(text: &str) -> Result<SystemTicks, ProcError> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .ok_or(ProcError::Format {
            file: "/proc/stat",
            what: "no aggregate cpu line",
        })?;
    // user nice system idle iowait irq softirq steal (guest time is
    // already counted in user and nice).
    let mut values = [0u64; 8];
    for (slot, v) in values.iter_mut().zip(line.split_whitespace()) {
        *slot = v.parse().unwrap_or(0);
    }
    Ok(SystemTicks {
        total: values.iter().sum(),
        idle: values[3] + values[4],
        steal: values[7],
    })
}

/// Everything the proxy exports as `process_*` metrics, each `None` if
/// `/proc` could not tell it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds (`process_cpu_seconds_total`).
    pub cpu_seconds: Option<f64>,
    /// Start time, seconds since the Unix epoch
    /// (`process_start_time_seconds`).
    pub start_time_seconds: Option<f64>,
    /// Number of threads (`process_threads`).
    pub threads: Option<u64>,
    /// Virtual memory size, bytes (`process_virtual_memory_bytes`).
    pub virtual_memory_bytes: Option<u64>,
    /// Resident set size, bytes (`process_resident_memory_bytes`).
    pub resident_memory_bytes: Option<u64>,
    /// Peak resident set size, bytes.
    pub peak_resident_memory_bytes: Option<u64>,
    /// Open file descriptors (`process_open_fds`).
    pub open_fds: Option<u64>,
    /// Soft limit on file descriptors, `None` also if unlimited
    /// (`process_max_fds`).
    pub max_fds: Option<u64>,
}

/// Reads every figure of [`ProcessStats`] now: `stat`, `status`, `limits`
/// and the `fd` directory of the process, plus `/proc/stat` for the boot
/// time, through one buffer.
pub fn process_stats(process: Process) -> ProcessStats {
    let mut out = ProcessStats::default();
    let mut buf = String::with_capacity(4096);
    let ticks = clock_ticks_per_second() as f64;
    if read_into(&process.path(File::Stat), &mut buf).is_ok() {
        if let Ok(stat) = parse_stat(&buf) {
            out.cpu_seconds = Some(stat.cpu_ticks() as f64 / ticks);
            out.threads = Some(stat.threads);
            out.virtual_memory_bytes = Some(stat.vsize_bytes);
            if read_into(Path::new("/proc/stat"), &mut buf).is_ok() {
                out.start_time_seconds = parse_boot_time(&buf)
                    .ok()
                    .map(|boot| boot as f64 + stat.start_ticks as f64 / ticks);
            }
        }
    }
    if read_into(&process.path(File::Status), &mut buf).is_ok() {
        let status = parse_status(&buf);
        out.resident_memory_bytes = status.vm_rss_kib.map(|k| k.saturating_mul(1024));
        out.peak_resident_memory_bytes = status.vm_hwm_kib.map(|k| k.saturating_mul(1024));
    }
    out.open_fds = open_fds(process).ok();
    if read_into(&process.path(File::Limits), &mut buf).is_ok() {
        out.max_fds = parse_max_fds(&buf).ok().flatten();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "1234 (we ird) proc) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 3 0 5000 1048576 256 18446744073709551615";

    #[test]
    fn stat_with_odd_command_name() {
        let s = parse_stat(STAT).expect("stat");
        assert_eq!(s.cpu_ticks(), 175);
        assert_eq!(s.state, 'S');
        assert!(!s.is_zombie());
        assert!(
            parse_stat("9 (z) Z 1 2 3 4 5 6 7 8 9 10 0 0 0 0 20 0 1 0 1 0 0")
                .is_ok_and(|s| s.is_zombie())
        );
        assert_eq!((s.utime_ticks, s.stime_ticks), (150, 25));
        assert_eq!(s.threads, 3);
        assert_eq!(s.start_ticks, 5000);
        assert_eq!(s.vsize_bytes, 1_048_576);
        let hz = clock_ticks_per_second() as f64;
        assert_eq!(s.cpu_seconds(), 175.0 / hz);
        assert_eq!(s.start_time_seconds(1_000), 1_000.0 + 5_000.0 / hz);
        assert!(matches!(
            parse_stat("1 (x) S 1 2"),
            Err(ProcError::Format {
                what: "line too short",
                ..
            })
        ));
        assert!(parse_stat("no paren").is_err());
    }

    #[test]
    fn status_fields() {
        let text =
            "Name:\twisp\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\nVmSize:\t 9000 kB\nThreads:\t3\n";
        let s = parse_status(text);
        assert_eq!(s.vm_rss_kib, Some(1024));
        assert_eq!(s.vm_hwm_kib, Some(2048));
        assert_eq!(s.vm_size_kib, Some(9000));
        assert_eq!(s.threads, Some(3));
        assert_eq!(
            parse_status("Name:\tkthreadd\nThreads:\t1\n").vm_rss_kib,
            None
        );
    }

    #[test]
    fn limits_and_proc_stat() {
        let limits =
            "Limit                     Soft Limit           Hard Limit           Units     \n\
Max processes             127431               127431               processes \n\
Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits).ok().flatten(), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert!(matches!(parse_max_fds(unlimited), Ok(None)));
        assert!(parse_max_fds("").is_err());

        let stat = "cpu  10 1 5 100 4 0 2 3 0 0\ncpu0 10 1 5 100 4 0 2 3 0 0\nintr 1 2 3\nbtime 1700000000\n";
        assert_eq!(parse_boot_time(stat).ok(), Some(1_700_000_000));
        let t = parse_system_ticks(stat).expect("cpu line");
        assert_eq!(
            t,
            SystemTicks {
                total: 125,
                idle: 104,
                steal: 3
            }
        );
        assert!(parse_boot_time("cpu 1\n").is_err());
    }

    #[test]
    fn reads_this_process() {
        let stats = process_stats(Process::Current);
        assert!(stats.cpu_seconds.is_some_and(|s| s >= 0.0));
        assert!(stats.threads.is_some_and(|t| t >= 1));
        assert!(stats.resident_memory_bytes.is_some_and(|b| b > 0));
        assert!(stats.peak_resident_memory_bytes >= stats.resident_memory_bytes);
        assert!(stats.virtual_memory_bytes.is_some_and(|b| b > 0));
        assert!(stats.open_fds.is_some_and(|n| n >= 3));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        assert!(stats
            .start_time_seconds
            .is_some_and(|s| s <= now + 1.0 && s > now - 86_400.0 * 365.0));
        let pid = Process::Pid(std::process::id());
        assert!(stat(pid).is_ok_and(|s| s.threads >= 1));
        assert!(status(pid).is_ok_and(|s| s.vm_rss_kib.is_some()));
        assert!(max_fds(pid).is_ok());
        assert!(system_ticks().is_ok_and(|t| t.total > 0));
        assert!(matches!(
            stat(Process::Pid(u32::MAX)),
            Err(ProcError::Read { .. })
        ));
        assert!(clock_ticks_per_second() >= 1);
        assert!(is_running(Process::Current));
        assert!(!is_running(Process::Pid(u32::MAX)));
    }
}
