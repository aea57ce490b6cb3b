//! Thin wrappers around the few libc calls the bench needs.
//!
//! Every `unsafe` block of the crate lives here, each one a single FFI call
//! with plain-integer or stack-owned arguments.

use anyhow::{bail, Result};

/// Pins the calling thread to the given CPUs (`sched_setaffinity(0, ...)`).
///
/// Threads created afterwards by this thread inherit the mask.
#[allow(unsafe_code)]
pub fn pin_current_thread(cpus: &[usize]) -> Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is a plain bit array; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    for &cpu in cpus {
        if cpu >= max {
            bail!("CPU {cpu} is out of range (max {})", max - 1);
        }
        // SAFETY: cpu < CPU_SETSIZE was checked above; `set` is a valid set.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` lives on this stack frame for the duration of the call
    // and the size passed matches its type.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        bail!(
            "sched_setaffinity({cpus:?}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Sends `signal` to process `pid`. A process that is already gone is not an error.
#[allow(unsafe_code)]
pub fn send_signal(pid: u32, signal: i32) -> Result<()> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        bail!("pid {pid} out of range");
    };
    // SAFETY: kill(2) takes two integers; pid is positive so it targets one process.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            bail!("kill({pid}, {signal}) failed: {err}");
        }
    }
    Ok(())
}

/// Arranges for a child started from `cmd` to receive SIGTERM when the bench
/// exits, even if the bench itself is SIGKILLed (`PR_SET_PDEATHSIG`).
#[allow(unsafe_code)]
pub fn terminate_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl,
    // which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// SIGTERM, re-exported so callers need not name libc.
pub const SIGTERM: i32 = libc::SIGTERM;

/// SIGKILL, re-exported so callers need not name libc.
pub const SIGKILL: i32 = libc::SIGKILL;

/// Creates a non-blocking, close-on-exec `CLOCK_MONOTONIC` timerfd.
#[allow(unsafe_code)]
pub fn timerfd_create() -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: timerfd_create takes two integer arguments.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        bail!("timerfd_create failed: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by the kernel, is valid and owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Arms `fd` (a timerfd) to expire once, `after` from now (at least 1 ns).
#[allow(unsafe_code)]
pub fn timerfd_arm(fd: &impl std::os::fd::AsRawFd, after: std::time::Duration) -> Result<()> {
    let after = after.max(std::time::Duration::from_nanos(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
            // Always below 1e9, so it fits a c_long on every platform.
            tv_nsec: after.subsec_nanos() as libc::c_long,
        },
    };
    // SAFETY: fd is a valid open timerfd; `spec` lives on the stack for the
    // duration of the call and the old-value pointer may be null.
    let rc = unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    if rc != 0 {
        bail!(
            "timerfd_settime failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Registers a timerfd with the current tokio reactor, for readability only.
/// Must be called inside a tokio runtime.
#[allow(unsafe_code)]
pub fn register_timer(timer: std::fs::File) -> Result<tokio::io::unix::AsyncFd<std::fs::File>> {
    use tokio::io::Interest;
    // SAFETY: the File owns its descriptor, which therefore stays open and
    // unchanged for as long as the AsyncFd (its new owner) lives.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(timer, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering timerfd: {e}"))
}
