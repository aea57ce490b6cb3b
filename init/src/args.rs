//! Command-line flags of `wisp-init`, compatible with linkerd2-proxy-init's
//! (the injector passes the same arguments), and their validation into a
//! [`RuleConfig`] and the iptables binaries to run.

use std::path::PathBuf;

use clap::Parser;

use crate::firewall::{Mode, Tools};
use crate::log::{Format, Level};
use crate::ports::{PortList, SubnetList};
use crate::rules::{Family, RuleConfig};

/// Redirects a pod's TCP traffic through its wisp proxy with iptables
/// nat rules (chains PROXY_INIT_REDIRECT and PROXY_INIT_OUTPUT), for IPv4
/// and, unless --ipv6=false, IPv6. Running it again leaves the same rules.
#[derive(Debug, Parser)]
#[command(name = "wisp-init", version)]
pub(crate) struct Args {
    /// Port inbound traffic is redirected to (the proxy's inbound listener).
    #[arg(short = 'p', long, default_value_t = 4143, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) incoming_proxy_port: u16,

    /// Port outbound traffic is redirected to (the proxy's outbound listener).
    #[arg(short = 'o', long, default_value_t = 4140, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) outgoing_proxy_port: u16,

    /// User id the proxy runs as: its traffic is not redirected (else it
    /// would loop). 0 or -1: no such rule.
    #[arg(short = 'u', long, default_value_t = 2102, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..=i64::from(u32::MAX)))]
    pub(crate) proxy_uid: i64,

    /// Group id whose traffic is not redirected. 0 or -1 (default): no such rule.
    #[arg(short = 'g', long, default_value_t = -1, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..=i64::from(u32::MAX)))]
    pub(crate) proxy_gid: i64,

    /// Redirect only these inbound ports (comma-separated); default: all.
    #[arg(short = 'r', long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) ports_to_redirect: Vec<u16>,

    /// Inbound destination ports and ranges (a-b) not redirected, comma-separated; may repeat.
    #[arg(long, value_name = "PORTS")]
    pub(crate) inbound_ports_to_ignore: Vec<PortList>,

    /// Outbound destination ports and ranges (a-b) not redirected, comma-separated; may repeat.
    #[arg(long, value_name = "PORTS")]
    pub(crate) outbound_ports_to_ignore: Vec<PortList>,

    /// Source subnets (CIDRs, comma-separated) whose inbound traffic is not
    /// redirected; IPv4 ones go to iptables, IPv6 ones to ip6tables.
    #[arg(long, value_name = "CIDRS")]
    pub(crate) subnets_to_ignore: Vec<SubnetList>,

    /// Also write the rules with ip6tables.
    #[arg(long, default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub(crate) ipv6: bool,

    /// iptables variant: legacy (default), nft or plain (`iptables`).
    /// Overrides --firewall-bin-path and --firewall-save-bin-path.
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) iptables_mode: Option<Mode>,

    /// iptables binary (kept for compatibility): its name (iptables-legacy,
    /// iptables-nft or iptables) selects the mode, its directory where the
    /// -save/-restore binaries are.
    #[arg(long, value_name = "PATH")]
    pub(crate) firewall_bin_path: Option<PathBuf>,

    /// iptables-save binary of the IPv4 rules (with --firewall-bin-path).
    #[arg(long, value_name = "PATH", requires = "firewall_bin_path")]
    pub(crate) firewall_save_bin_path: Option<PathBuf>,

    /// Sets net.netfilter.nf_conntrack_tcp_timeout_close_wait (0: leave it).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    pub(crate) timeout_close_wait_secs: u32,

    /// Print the rules (iptables-restore input, per family) and change nothing.
    #[arg(long, visible_alias = "simulate")]
    pub(crate) dry_run: bool,

    /// Accepted for compatibility: wisp-init always waits for the xtables lock.
    #[arg(short = 'w', long)]
    pub(crate) use_wait_flag: bool,

    /// What to log on stderr: error, warn, info (default) or debug.
    #[arg(long, default_value = "info", value_parser = parse_level, value_name = "LEVEL")]
    pub(crate) log_level: Level,

    /// Log format: plain or json.
    #[arg(long, value_enum, default_value = "plain", value_name = "FORMAT")]
    pub(crate) log_format: Format,
}

/// A flag combination that is not valid (the caller's mistake).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ArgsError {
    /// `--firewall-bin-path` names no known iptables variant.
    #[error("--firewall-bin-path {path:?}: expected iptables-legacy, iptables-nft or iptables (or a path ending in one), or use --iptables-mode")]
    BinPath {
        /// The path given.
        path: String,
    },
}

/// Parses a boolean as Go's `strconv.ParseBool` does (`--ipv6=false`).
fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (true or false)")),
    }
}

/// Parses a log level (logrus names are accepted: panic/fatal are error,
/// trace is debug).
fn parse_level(s: &str) -> Result<Level, String> {
    match s.to_ascii_lowercase().as_str() {
        "panic" | "fatal" | "error" => Ok(Level::Error),
        "warn" | "warning" => Ok(Level::Warn),
        "info" => Ok(Level::Info),
        "debug" | "trace" => Ok(Level::Debug),
        _ => Err(format!(
            "{s:?} is not a log level (error, warn, info or debug)"
        )),
    }
}

/// The iptables binaries of both families.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Binaries {
    /// The selected variant.
    pub(crate) mode: Mode,
    /// For the IPv4 rules.
    pub(crate) v4: Tools,
    /// For the IPv6 rules.
    pub(crate) v6: Tools,
}

impl Binaries {
    /// The binaries of `family`.
    pub(crate) fn of(&self, family: Family) -> &Tools {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

fn id(v: i64) -> Option<u32> {
    u32::try_from(v).ok().filter(|&v| v > 0)
}

impl Args {
    /// The rules these flags describe.
    pub(crate) fn rule_config(&self) -> RuleConfig {
        let flatten = |lists: &[PortList]| lists.iter().flat_map(|l| l.0.iter().copied()).collect();
        RuleConfig {
            inbound_port: self.incoming_proxy_port,
            outbound_port: self.outgoing_proxy_port,
            proxy_uid: id(self.proxy_uid),
            proxy_gid: id(self.proxy_gid),
            ports_to_redirect: self.ports_to_redirect.clone(),
            inbound_ignore: flatten(&self.inbound_ports_to_ignore),
            outbound_ignore: flatten(&self.outbound_ports_to_ignore),
            subnets_ignore: self
                .subnets_to_ignore
                .iter()
                .flat_map(|l| l.0.iter().cloned())
                .collect(),
        }
    }

    /// The families to write: IPv4, and IPv6 unless `--ipv6=false`.
    pub(crate) fn families(&self) -> Vec<Family> {
        if self.ipv6 {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }

    /// The binaries selected by `--iptables-mode`, else by
    /// `--firewall-bin-path` (and `--firewall-save-bin-path`), else legacy.
    pub(crate) fn binaries(&self) -> Result<Binaries, ArgsError> {
        if let Some(mode) = self.iptables_mode {
            return Ok(Binaries {
                mode,
                v4: Tools::of(mode, Family::V4, None),
                v6: Tools::of(mode, Family::V6, None),
            });
        }
        let Some(bin) = &self.firewall_bin_path else {
            return Ok(Binaries {
                mode: Mode::Legacy,
                v4: Tools::of(Mode::Legacy, Family::V4, None),
                v6: Tools::of(Mode::Legacy, Family::V6, None),
            });
        };
        let err = || ArgsError::BinPath {
            path: bin.display().to_string(),
        };
        let name = bin.file_name().and_then(|n| n.to_str()).ok_or_else(err)?;
        let mode = Mode::from_binary_name(name).ok_or_else(err)?;
        let dir = bin.parent().filter(|d| !d.as_os_str().is_empty());
        let mut v4 = Tools::of(mode, Family::V4, dir);
        if let Some(save) = &self.firewall_save_bin_path {
            v4.save = save.clone();
        }
        Ok(Binaries {
            mode,
            v4,
            v6: Tools::of(mode, Family::V6, dir),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::try_parse_from(std::iter::once("wisp-init").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    /// The arguments Linkerd's injector renders by default.
    const INJECTED: &[&str] = &[
        "--incoming-proxy-port",
        "4143",
        "--outgoing-proxy-port",
        "4140",
        "--proxy-uid",
        "2102",
        "--inbound-ports-to-ignore",
        "4190,4191,4567,4568",
        "--outbound-ports-to-ignore",
        "4567,4568",
    ];

    #[test]
    fn accepts_the_injected_arguments() {
        let a = parse(INJECTED).unwrap();
        let c = a.rule_config();
        assert_eq!(c.inbound_port, 4143);
        assert_eq!(c.outbound_port, 4140);
        assert_eq!(c.proxy_uid, Some(2102));
        assert_eq!(c.proxy_gid, None);
        assert_eq!(c.inbound_ignore.len(), 4);
        assert_eq!(c.outbound_ignore.len(), 2);
        assert!(a.ipv6);
        assert_eq!(a.families(), [Family::V4, Family::V6]);
        let b = a.binaries().unwrap();
        assert_eq!(b.mode, Mode::Legacy);
        assert_eq!(b.v4.restore, PathBuf::from("iptables-legacy-restore"));
        assert_eq!(b.v6.save, PathBuf::from("ip6tables-legacy-save"));
        assert!(!a.dry_run);
    }

    #[test]
    fn nft_ipv6_gid_subnets_and_more() {
        let mut args = INJECTED.to_vec();
        args.extend([
            "--firewall-bin-path",
            "iptables-nft",
            "--firewall-save-bin-path",
            "iptables-nft-save",
            "--ipv6=false",
            "--proxy-gid",
            "2103",
            "--subnets-to-ignore",
            "10.0.0.0/8,fd00::/8",
            "--inbound-ports-to-ignore",
            "9000-9010",
            "--timeout-close-wait-secs",
            "3600",
            "--log-level",
            "debug",
            "--log-format",
            "json",
            "-w",
            "--simulate",
        ]);
        let a = parse(&args).unwrap();
        assert!(!a.ipv6);
        assert_eq!(a.families(), [Family::V4]);
        assert!(a.dry_run);
        assert_eq!(a.timeout_close_wait_secs, 3600);
        let c = a.rule_config();
        assert_eq!(c.proxy_gid, Some(2103));
        assert_eq!(c.subnets_ignore.len(), 2);
        // Repeated flags add up.
        assert_eq!(c.inbound_ignore.len(), 5);
        let b = a.binaries().unwrap();
        assert_eq!(b.mode, Mode::Nft);
        assert_eq!(b.v4.save, PathBuf::from("iptables-nft-save"));
        assert_eq!(b.v6.restore, PathBuf::from("ip6tables-nft-restore"));

        // --iptables-mode wins; paths keep their directory.
        let a = parse(&[
            "--iptables-mode",
            "plain",
            "--firewall-bin-path",
            "iptables-nft",
        ])
        .unwrap();
        assert_eq!(a.binaries().unwrap().mode, Mode::Plain);
        let a = parse(&["--firewall-bin-path", "/usr/sbin/iptables-legacy"]).unwrap();
        let b = a.binaries().unwrap();
        assert_eq!(b.v4.save, PathBuf::from("/usr/sbin/iptables-legacy-save"));
        assert_eq!(
            b.v6.restore,
            PathBuf::from("/usr/sbin/ip6tables-legacy-restore")
        );
        for (flag, want) in [("--ipv6", true), ("--ipv6=0", false), ("--ipv6=True", true)] {
            assert_eq!(parse(&[flag]).unwrap().ipv6, want, "{flag}");
        }
        assert_eq!(parse(&["-u", "-1"]).unwrap().rule_config().proxy_uid, None);
        assert_eq!(parse(&["-u", "0"]).unwrap().rule_config().proxy_uid, None);
        assert_eq!(
            parse(&["-r", "8080,9090"]).unwrap().ports_to_redirect,
            [8080, 9090]
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let e = parse(&["--inbound-ports-to-ignore", "4190,70000"]).unwrap_err();
        assert!(
            e.contains("invalid value '4190,70000' for '--inbound-ports-to-ignore <PORTS>': port 70000 is out of range"),
            "{e}"
        );
        let e = parse(&["--outbound-ports-to-ignore", "443-80"]).unwrap_err();
        assert!(e.contains("port range \"443-80\" is reversed"), "{e}");
        let e = parse(&["--subnets-to-ignore", "10.0.0.0/40"]).unwrap_err();
        assert!(e.contains("\"10.0.0.0/40\" is not a valid CIDR"), "{e}");
        let e = parse(&["--incoming-proxy-port", "0"]).unwrap_err();
        assert!(e.contains("--incoming-proxy-port"), "{e}");
        let e = parse(&["--ipv6=maybe"]).unwrap_err();
        assert!(e.contains("\"maybe\" is not a boolean"), "{e}");
        let e = parse(&["--iptables-mode", "bpf"]).unwrap_err();
        assert!(e.contains("possible values: legacy, nft, plain"), "{e}");
        let e = parse(&["--proxy-uid", "-2"]).unwrap_err();
        assert!(e.contains("--proxy-uid"), "{e}");
        let e = parse(&["--log-level", "loud"]).unwrap_err();
        assert!(e.contains("is not a log level"), "{e}");
        let e = parse(&["--firewall-save-bin-path", "iptables-save"]).unwrap_err();
        assert!(e.contains("--firewall-bin-path"), "{e}");
        let e = parse(&["--firewall-bin-path", "/sbin/nft"])
            .unwrap()
            .binaries()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--firewall-bin-path \"/sbin/nft\": expected iptables-legacy, iptables-nft or iptables (or a path ending in one), or use --iptables-mode"
        );
    }
}
