//! The nat-table rules that send a pod's TCP traffic through its proxy, in
//! iptables-save syntax, and the `iptables-restore --noflush` input that
//! installs them idempotently.
//!
//! The rules follow linkerd2-proxy-init: chain `PROXY_INIT_REDIRECT`
//! (jumped to from `PREROUTING`) returns for ignored inbound ports and
//! source subnets and redirects the rest to the inbound port; chain
//! `PROXY_INIT_OUTPUT` (jumped to from `OUTPUT`) returns for the proxy's
//! uid/gid, loopback and ignored outbound ports, and redirects the rest to
//! the outbound port. Every rule carries a `proxy-init/...` comment. Each
//! rule is written exactly as iptables-save prints it (matches, then the
//! comment, then the target), so `--dry-run` output and a later
//! `iptables-save -t nat` agree line for line.

use crate::ports::{multiport_chunks, PortRange, Subnet};

/// The chain jumped to from `PREROUTING`.
pub(crate) const REDIRECT_CHAIN: &str = "PROXY_INIT_REDIRECT";
/// The chain jumped to from `OUTPUT`.
pub(crate) const OUTPUT_CHAIN: &str = "PROXY_INIT_OUTPUT";

/// The address family a rule set is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// iptables.
    V4,
    /// ip6tables.
    V6,
}

impl Family {
    /// `IPv4` / `IPv6`, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// What the rules are made of (validated flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleConfig {
    /// The proxy's inbound port (4143).
    pub(crate) inbound_port: u16,
    /// The proxy's outbound port (4140).
    pub(crate) outbound_port: u16,
    /// Traffic of this uid is not redirected (the proxy's own).
    pub(crate) proxy_uid: Option<u32>,
    /// Traffic of this gid is not redirected.
    pub(crate) proxy_gid: Option<u32>,
    /// Only these inbound ports are redirected; empty: all.
    pub(crate) ports_to_redirect: Vec<u16>,
    /// Inbound destination ports not redirected.
    pub(crate) inbound_ignore: Vec<PortRange>,
    /// Outbound destination ports not redirected.
    pub(crate) outbound_ignore: Vec<PortRange>,
    /// Source subnets whose inbound traffic is not redirected.
    pub(crate) subnets_ignore: Vec<Subnet>,
}

/// The rules of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleSet {
    /// The jump from `PREROUTING`.
    pub(crate) prerouting_jump: String,
    /// The jump from `OUTPUT`.
    pub(crate) output_jump: String,
    /// The rules of `PROXY_INIT_OUTPUT`, in order.
    pub(crate) output: Vec<String>,
    /// The rules of `PROXY_INIT_REDIRECT`, in order.
    pub(crate) redirect: Vec<String>,
}

/// Which of our jumps the table already has (from `iptables-save -t nat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Existing {
    /// `PREROUTING` already jumps to `PROXY_INIT_REDIRECT`.
    pub(crate) prerouting_jump: bool,
    /// `OUTPUT` already jumps to `PROXY_INIT_OUTPUT`.
    pub(crate) output_jump: bool,
}

fn comment(text: &str) -> String {
    format!("-m comment --comment \"proxy-init/{text}\"")
}

fn ignore_ports(chain: &str, ports: &[PortRange], out: &mut Vec<String>) {
    for chunk in multiport_chunks(ports) {
        let list = chunk
            .iter()
            .map(PortRange::multiport)
            .collect::<Vec<_>>()
            .join(",");
        out.push(format!(
            "-A {chain} -p tcp -m multiport --dports {list} {} -j RETURN",
            comment(&format!("ignore-port-{list}"))
        ));
    }
}

impl RuleConfig {
    /// The rules for `family`; subnets of the other family are left out.
    pub(crate) fn rules(&self, family: Family) -> RuleSet {
        let mut redirect = Vec::new();
        ignore_ports(REDIRECT_CHAIN, &self.inbound_ignore, &mut redirect);
        for s in self
            .subnets_ignore
            .iter()
            .filter(|s| s.is_ipv6() == (family == Family::V6))
        {
            redirect.push(format!(
                "-A {REDIRECT_CHAIN} -s {} {} -j RETURN",
                s.cidr(),
                comment(&format!("ignore-subnet-{}", s.text))
            ));
        }
        if self.ports_to_redirect.is_empty() {
            redirect.push(format!(
                "-A {REDIRECT_CHAIN} -p tcp {} -j REDIRECT --to-ports {}",
                comment("redirect-all-incoming-to-proxy-port"),
                self.inbound_port
            ));
        } else {
            for port in &self.ports_to_redirect {
                redirect.push(format!(
                    "-A {REDIRECT_CHAIN} -p tcp -m tcp --dport {port} {} -j REDIRECT --to-ports {}",
                    comment(&format!("redirect-port-{port}-to-proxy-port")),
                    self.inbound_port
                ));
            }
        }

        let mut output = Vec::new();
        if let Some(uid) = self.proxy_uid {
            output.push(format!(
                "-A {OUTPUT_CHAIN} -m owner --uid-owner {uid} {} -j RETURN",
                comment("ignore-proxy-user-id")
            ));
        }
        if let Some(gid) = self.proxy_gid {
            output.push(format!(
                "-A {OUTPUT_CHAIN} -m owner --gid-owner {gid} {} -j RETURN",
                comment("ignore-proxy-group-id")
            ));
        }
        output.push(format!(
            "-A {OUTPUT_CHAIN} -o lo {} -j RETURN",
            comment("ignore-loopback")
        ));
        ignore_ports(OUTPUT_CHAIN, &self.outbound_ignore, &mut output);
        output.push(format!(
            "-A {OUTPUT_CHAIN} -p tcp {} -j REDIRECT --to-ports {}",
            comment("redirect-all-outgoing-to-proxy-port"),
            self.outbound_port
        ));

        RuleSet {
            prerouting_jump: format!(
                "-A PREROUTING {} -j {REDIRECT_CHAIN}",
                comment("install-proxy-init-prerouting")
            ),
            output_jump: format!(
                "-A OUTPUT {} -j {OUTPUT_CHAIN}",
                comment("install-proxy-init-output")
            ),
            output,
            redirect,
        }
    }
}

impl RuleSet {
    /// Input for `iptables-restore --noflush`: declaring our two chains
    /// creates them, or flushes them if they exist (other chains are not
    /// touched); then their rules; then the jumps the table lacks. One
    /// transaction: it applies whole or not at all.
    pub(crate) fn restore_input(&self, existing: Existing) -> String {
        let mut s = String::from("*nat\n");
        s.push_str(&format!(
            ":{OUTPUT_CHAIN} - [0:0]\n:{REDIRECT_CHAIN} - [0:0]\n"
        ));
        if !existing.prerouting_jump {
            s.push_str(&self.prerouting_jump);
            s.push('\n');
        }
        if !existing.output_jump {
            s.push_str(&self.output_jump);
            s.push('\n');
        }
        for rule in self.output.iter().chain(&self.redirect) {
            s.push_str(rule);
            s.push('\n');
        }
        s.push_str("COMMIT\n");
        s
    }
}

/// Which of our jumps `save` (the output of `iptables-save -t nat`) has:
/// an `-A PREROUTING ... -j PROXY_INIT_REDIRECT` / `-A OUTPUT ... -j
/// PROXY_INIT_OUTPUT` line, whatever its matches or comment.
pub(crate) fn existing(save: &str) -> Existing {
    let jumps = |chain: &str, target: &str| {
        save.lines().any(|line| {
            let line = line.trim_end();
            line.strip_prefix("-A ")
                .and_then(|rest| rest.strip_prefix(chain))
                .is_some_and(|rest| {
                    rest.starts_with(' ')
                        && (rest.ends_with(&format!(" -j {target}"))
                            || rest.contains(&format!(" -j {target} ")))
                })
        })
    };
    Existing {
        prerouting_jump: jumps("PREROUTING", REDIRECT_CHAIN),
        output_jump: jumps("OUTPUT", OUTPUT_CHAIN),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ports::{PortList, SubnetList};

    fn config() -> RuleConfig {
        RuleConfig {
            inbound_port: 4143,
            outbound_port: 4140,
            proxy_uid: Some(2102),
            proxy_gid: None,
            ports_to_redirect: Vec::new(),
            inbound_ignore: "4190,4191,4567,4568".parse::<PortList>().unwrap().0,
            outbound_ignore: "4567,4568".parse::<PortList>().unwrap().0,
            subnets_ignore: Vec::new(),
        }
    }

    const DEFAULT_V4: &str = r#"*nat
:PROXY_INIT_OUTPUT - [0:0]
:PROXY_INIT_REDIRECT - [0:0]
-A PREROUTING -m comment --comment "proxy-init/install-proxy-init-prerouting" -j PROXY_INIT_REDIRECT
-A OUTPUT -m comment --comment "proxy-init/install-proxy-init-output" -j PROXY_INIT_OUTPUT
-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 -m comment --comment "proxy-init/ignore-proxy-user-id" -j RETURN
-A PROXY_INIT_OUTPUT -o lo -m comment --comment "proxy-init/ignore-loopback" -j RETURN
-A PROXY_INIT_OUTPUT -p tcp -m multiport --dports 4567,4568 -m comment --comment "proxy-init/ignore-port-4567,4568" -j RETURN
-A PROXY_INIT_OUTPUT -p tcp -m comment --comment "proxy-init/redirect-all-outgoing-to-proxy-port" -j REDIRECT --to-ports 4140
-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 4190,4191,4567,4568 -m comment --comment "proxy-init/ignore-port-4190,4191,4567,4568" -j RETURN
-A PROXY_INIT_REDIRECT -p tcp -m comment --comment "proxy-init/redirect-all-incoming-to-proxy-port" -j REDIRECT --to-ports 4143
COMMIT
"#;

    #[test]
    fn default_rules_exact_text() {
        let rules = config().rules(Family::V4);
        assert_eq!(rules.restore_input(Existing::default()), DEFAULT_V4);
        // IPv6 gets the same rules (no subnets here).
        assert_eq!(config().rules(Family::V6), rules);
    }

    #[test]
    fn existing_jumps_are_not_added_twice() {
        let rules = config().rules(Family::V4);
        let input = rules.restore_input(Existing {
            prerouting_jump: true,
            output_jump: true,
        });
        assert!(!input.contains("-A PREROUTING"), "{input}");
        assert!(!input.contains("-A OUTPUT "), "{input}");
        // Everything else is as in a first run: the chains are re-declared (flushed) and refilled.
        let first: Vec<&str> = DEFAULT_V4
            .lines()
            .filter(|l| !l.starts_with("-A PREROUTING") && !l.starts_with("-A OUTPUT "))
            .collect();
        assert_eq!(input.lines().collect::<Vec<_>>(), first);
        let only_output = rules.restore_input(Existing {
            prerouting_jump: true,
            output_jump: false,
        });
        assert!(only_output.contains(&rules.output_jump));
        assert!(!only_output.contains(&rules.prerouting_jump));
    }

    #[test]
    fn detects_existing_jumps_in_iptables_save_output() {
        let save = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:PROXY_INIT_OUTPUT - [0:0]\n:PROXY_INIT_REDIRECT - [0:0]\n-A PREROUTING -m comment --comment \"proxy-init/install-proxy-init-prerouting\" -j PROXY_INIT_REDIRECT\n-A OUTPUT -j PROXY_INIT_OUTPUT\nCOMMIT\n";
        assert_eq!(
            existing(save),
            Existing {
                prerouting_jump: true,
                output_jump: true
            }
        );
        // Chains alone, or jumps elsewhere, or to other chains, do not count.
        let save = ":PROXY_INIT_OUTPUT - [0:0]\n-A PREROUTINGX -j PROXY_INIT_REDIRECT\n-A OUTPUT -j PROXY_INIT_OUTPUT_OLD\n-A KUBE -j PROXY_INIT_OUTPUT\n";
        assert_eq!(existing(save), Existing::default());
        assert_eq!(existing(""), Existing::default());
    }

    #[test]
    fn gid_subnets_and_skip_ports() {
        let mut c = config();
        c.proxy_gid = Some(2103);
        c.inbound_ignore = "4190,4191,25-587".parse::<PortList>().unwrap().0;
        c.outbound_ignore = "443,6443".parse::<PortList>().unwrap().0;
        c.subnets_ignore = "10.1.0.0/16,fd00::1/8".parse::<SubnetList>().unwrap().0;
        let v4 = c.rules(Family::V4);
        assert_eq!(
            v4.output,
            [
                r#"-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 -m comment --comment "proxy-init/ignore-proxy-user-id" -j RETURN"#,
                r#"-A PROXY_INIT_OUTPUT -m owner --gid-owner 2103 -m comment --comment "proxy-init/ignore-proxy-group-id" -j RETURN"#,
                r#"-A PROXY_INIT_OUTPUT -o lo -m comment --comment "proxy-init/ignore-loopback" -j RETURN"#,
                r#"-A PROXY_INIT_OUTPUT -p tcp -m multiport --dports 443,6443 -m comment --comment "proxy-init/ignore-port-443,6443" -j RETURN"#,
                r#"-A PROXY_INIT_OUTPUT -p tcp -m comment --comment "proxy-init/redirect-all-outgoing-to-proxy-port" -j REDIRECT --to-ports 4140"#,
            ]
        );
        assert_eq!(
            v4.redirect,
            [
                r#"-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 4190,4191,25:587 -m comment --comment "proxy-init/ignore-port-4190,4191,25:587" -j RETURN"#,
                r#"-A PROXY_INIT_REDIRECT -s 10.1.0.0/16 -m comment --comment "proxy-init/ignore-subnet-10.1.0.0/16" -j RETURN"#,
                r#"-A PROXY_INIT_REDIRECT -p tcp -m comment --comment "proxy-init/redirect-all-incoming-to-proxy-port" -j REDIRECT --to-ports 4143"#,
            ]
        );
        // The IPv6 rules carry the IPv6 subnet (as a network) and not the IPv4 one.
        let v6 = c.rules(Family::V6);
        assert_eq!(
            v6.redirect[1],
            r#"-A PROXY_INIT_REDIRECT -s fd00::/8 -m comment --comment "proxy-init/ignore-subnet-fd00::1/8" -j RETURN"#
        );
        assert_eq!(v6.redirect.len(), 3);
        assert_eq!(v6.output, v4.output);
    }

    #[test]
    fn no_uid_rule_without_a_uid() {
        let mut c = config();
        c.proxy_uid = None;
        c.outbound_ignore.clear();
        let rules = c.rules(Family::V4);
        assert_eq!(
            rules.output,
            [
                r#"-A PROXY_INIT_OUTPUT -o lo -m comment --comment "proxy-init/ignore-loopback" -j RETURN"#,
                r#"-A PROXY_INIT_OUTPUT -p tcp -m comment --comment "proxy-init/redirect-all-outgoing-to-proxy-port" -j REDIRECT --to-ports 4140"#,
            ]
        );
    }

    #[test]
    fn listed_ports_are_redirected_one_by_one() {
        let mut c = config();
        c.inbound_ignore.clear();
        c.ports_to_redirect = vec![8080, 9090];
        assert_eq!(
            c.rules(Family::V4).redirect,
            [
                r#"-A PROXY_INIT_REDIRECT -p tcp -m tcp --dport 8080 -m comment --comment "proxy-init/redirect-port-8080-to-proxy-port" -j REDIRECT --to-ports 4143"#,
                r#"-A PROXY_INIT_REDIRECT -p tcp -m tcp --dport 9090 -m comment --comment "proxy-init/redirect-port-9090-to-proxy-port" -j REDIRECT --to-ports 4143"#,
            ]
        );
    }

    #[test]
    fn more_than_fifteen_ports_make_several_rules() {
        let mut c = config();
        let list = (5000..5020).map(|p| p.to_string()).collect::<Vec<_>>();
        c.inbound_ignore = list.join(",").parse::<PortList>().unwrap().0;
        let rules = c.rules(Family::V4);
        let first = list[..15].join(",");
        let second = list[15..].join(",");
        assert_eq!(
            rules.redirect,
            [
                format!("-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports {first} -m comment --comment \"proxy-init/ignore-port-{first}\" -j RETURN"),
                format!("-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports {second} -m comment --comment \"proxy-init/ignore-port-{second}\" -j RETURN"),
                r#"-A PROXY_INIT_REDIRECT -p tcp -m comment --comment "proxy-init/redirect-all-incoming-to-proxy-port" -j REDIRECT --to-ports 4143"#.to_string(),
            ]
        );
    }
}
