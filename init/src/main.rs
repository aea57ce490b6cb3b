//! `wisp-init`: writes the iptables nat rules that send a meshed pod's TCP
//! traffic through its wisp proxy, as linkerd2-proxy-init does (same flags,
//! chains, comments and rule order), so it can run as the pod's init
//! container. See `README.md` for the rules and behaviour.
//!
//! Modules: `args` (flags), `ports` (port and subnet lists), `rules` (the
//! rule text), `firewall` (running iptables), `log` (stderr diagnostics).

mod args;
mod firewall;
mod log;
mod ports;
mod rules;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Args, ArgsError};
use crate::firewall::FirewallError;
use crate::log::Log;
use crate::rules::Existing;

/// The sysctl `--timeout-close-wait-secs` sets (per network namespace).
const CLOSE_WAIT_SYSCTL: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait";

/// Why `wisp-init` stopped.
#[derive(Debug, thiserror::Error)]
enum InitError {
    /// The flags do not fit together (the caller's mistake).
    #[error(transparent)]
    Args(#[from] ArgsError),
    /// iptables is missing, not permitted, or refused the rules.
    #[error("cannot write the {family} rules")]
    Firewall {
        /// IPv4 or IPv6.
        family: &'static str,
        /// What iptables said.
        #[source]
        source: FirewallError,
    },
    /// The conntrack sysctl could not be written (needs root and a
    /// writable /proc/sys; Linkerd's chart runs the init as root for it).
    #[error("cannot set {CLOSE_WAIT_SYSCTL} to {secs}")]
    CloseWait {
        /// The value.
        secs: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `err` and its causes on one line, separated by `: `.
fn one_line(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

fn run(args: &Args, log: &Log) -> Result<(), InitError> {
    let config = args.rule_config();
    let binaries = args.binaries()?;
    let families = args.families();
    if config.proxy_uid.is_none() {
        log.warn("no --proxy-uid: the proxy's own connections will be redirected back to it");
    }

    if args.dry_run {
        let mut out = String::new();
        if args.timeout_close_wait_secs > 0 {
            out.push_str(&format!(
                "# would write {} to {CLOSE_WAIT_SYSCTL}\n",
                args.timeout_close_wait_secs
            ));
        }
        for family in families {
            out.push_str(&format!(
                "# {} rules: {} --noflush (dry run: nothing changed)\n",
                family.name(),
                binaries.of(family).restore.display()
            ));
            out.push_str(&config.rules(family).restore_input(Existing::default()));
        }
        print!("{out}");
        return Ok(());
    }

    if args.timeout_close_wait_secs > 0 {
        std::fs::write(
            CLOSE_WAIT_SYSCTL,
            format!("{}\n", args.timeout_close_wait_secs),
        )
        .map_err(|source| InitError::CloseWait {
            secs: args.timeout_close_wait_secs,
            source,
        })?;
        log.info(&format!(
            "set {CLOSE_WAIT_SYSCTL} to {}",
            args.timeout_close_wait_secs
        ));
    }

    // Find every binary before changing anything.
    let mut tools = Vec::new();
    for family in families {
        let wanted = binaries.of(family).clone();
        let t = firewall::resolve(wanted, family, &mut |w| log.warn(&w)).map_err(|source| {
            InitError::Firewall {
                family: family.name(),
                source,
            }
        })?;
        tools.push((family, t));
    }

    for (family, t) in tools {
        let fail = |source| InitError::Firewall {
            family: family.name(),
            source,
        };
        let before = firewall::read_nat(&t).map_err(fail)?;
        let existing = rules::existing(&before);
        let input = config.rules(family).restore_input(existing);
        log.debug(&format!(
            "{} --noflush input:\n{input}",
            t.restore.display()
        ));
        firewall::apply(&t, &input).map_err(fail)?;
        let jumps = if existing.prerouting_jump && existing.output_jump {
            "jumps already present, chains flushed and refilled"
        } else {
            "chains and jumps installed"
        };
        log.info(&format!(
            "{} rules written with {} ({jumps})",
            family.name(),
            t.restore.display()
        ));
        if let Ok(after) = firewall::read_nat(&t) {
            log.debug(&format!("{} -t nat now:\n{after}", t.save.display()));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let log = Log {
        level: args.log_level,
        format: args.log_format,
    };
    match run(&args, &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log.error(&one_line(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn errors_print_on_one_line_with_their_cause() {
        let e = InitError::Firewall {
            family: "IPv4",
            source: FirewallError::NotFound {
                wanted: "iptables-legacy-save".into(),
            },
        };
        let line = one_line(&e);
        assert!(
            line.starts_with("cannot write the IPv4 rules: iptables-legacy-save not found"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let e = InitError::CloseWait {
            secs: 5,
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            one_line(&e),
            format!("cannot set {CLOSE_WAIT_SYSCTL} to 5: permission denied")
        );
    }
}
