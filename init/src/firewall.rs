//! Running iptables: which `-save`/`-restore` binaries a mode selects, the
//! fallback among the installed variants, reading the nat table and
//! applying a restore transaction, with errors that name the binary.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::rules::Family;

/// The iptables variant (`--iptables-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// `iptables-legacy` (x_tables), upstream's default.
    Legacy,
    /// `iptables-nft` (nf_tables).
    Nft,
    /// Plain `iptables`, whichever variant it links to.
    Plain,
}

impl Mode {
    /// The suffix after `iptables` / `ip6tables` in the binaries' names.
    fn infix(self) -> &'static str {
        match self {
            Mode::Legacy => "-legacy",
            Mode::Nft => "-nft",
            Mode::Plain => "",
        }
    }

    /// The mode whose main binary is called `name` (`iptables-nft`, ...).
    pub(crate) fn from_binary_name(name: &str) -> Option<Mode> {
        [Mode::Legacy, Mode::Nft, Mode::Plain]
            .into_iter()
            .find(|m| name == format!("iptables{}", m.infix()))
    }
}

/// The two binaries wisp-init runs for one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tools {
    /// Lists the nat table (`iptables-legacy-save`).
    pub(crate) save: PathBuf,
    /// Applies the rules (`iptables-legacy-restore`).
    pub(crate) restore: PathBuf,
}

impl Tools {
    /// The binaries of `mode` for `family`, in `dir` if given (else looked
    /// up on `PATH` when run).
    pub(crate) fn of(mode: Mode, family: Family, dir: Option<&Path>) -> Tools {
        let prefix = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        let name = |op: &str| {
            let file = format!("{prefix}{}-{op}", mode.infix());
            match dir {
                Some(d) => d.join(file),
                None => PathBuf::from(file),
            }
        };
        Tools {
            save: name("save"),
            restore: name("restore"),
        }
    }
}

/// Why iptables could not be run or refused the rules.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FirewallError {
    /// Neither the selected binaries nor any fallback is installed (the
    /// image or host lacks iptables).
    #[error("{wanted} not found (not on PATH, and no iptables-nft, iptables or iptables-legacy variant of it either): install iptables or pass --iptables-mode")]
    NotFound {
        /// The binary the mode selected.
        wanted: String,
    },
    /// The binary exists but could not be started.
    #[error("cannot run {binary}")]
    Spawn {
        /// The binary.
        binary: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ran and failed: usually missing privileges (NET_ADMIN, or the
    /// xtables lock), or a kernel without the nat table.
    #[error("{command} failed ({status}): {message}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// The first line of its stderr (iptables says why in one line).
        message: String,
    },
}

/// Whether `p` names an executable file: a path as is, a bare name on `PATH`.
fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if p.components().count() > 1 {
        return is_exec(p);
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| is_exec(&dir.join(p))))
}

/// `wanted` if both its binaries exist; otherwise the first installed of
/// the nft, plain and legacy variants (as upstream falls back), with a
/// warning; `NotFound` if none is.
pub(crate) fn resolve(
    wanted: Tools,
    family: Family,
    warn: &mut dyn FnMut(String),
) -> Result<Tools, FirewallError> {
    let present = |t: &Tools| executable(&t.save) && executable(&t.restore);
    if present(&wanted) {
        return Ok(wanted);
    }
    for mode in [Mode::Nft, Mode::Plain, Mode::Legacy] {
        let t = Tools::of(mode, family, None);
        if present(&t) {
            warn(format!(
                "{} or {} not found; using {} and {} instead",
                wanted.save.display(),
                wanted.restore.display(),
                t.save.display(),
                t.restore.display()
            ));
            return Ok(t);
        }
    }
    let missing = if executable(&wanted.save) {
        &wanted.restore
    } else {
        &wanted.save
    };
    Err(FirewallError::NotFound {
        wanted: missing.display().to_string(),
    })
}

fn first_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no error message")
        .to_string()
}

/// Runs `binary args`, feeding it `input`; its stdout on success.
fn run(binary: &Path, args: &[&str], input: Option<&str>) -> Result<String, FirewallError> {
    let name = binary.display().to_string();
    let command = std::iter::once(name.as_str())
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(binary)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| FirewallError::Spawn {
            binary: name.clone(),
            source,
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A write error (the program exited early) shows in its status below.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| FirewallError::Spawn {
            binary: name.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(FirewallError::Failed {
            command,
            status: out.status,
            message: first_line(&out.stderr),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `<save> -t nat`: the nat table in iptables-save syntax.
pub(crate) fn read_nat(tools: &Tools) -> Result<String, FirewallError> {
    run(&tools.save, &["-t", "nat"], None)
}

/// `<restore> --noflush --wait 60` with `input`: one transaction; other
/// chains and tables are kept. `--wait` waits for the xtables lock that
/// other iptables users (kube-proxy, CNI plugins) may hold.
pub(crate) fn apply(tools: &Tools, input: &str) -> Result<(), FirewallError> {
    run(&tools.restore, &["--noflush", "--wait=60"], Some(input)).map(drop)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn modes_select_binaries() {
        let t = Tools::of(Mode::Legacy, Family::V4, None);
        assert_eq!(t.save, PathBuf::from("iptables-legacy-save"));
        assert_eq!(t.restore, PathBuf::from("iptables-legacy-restore"));
        let t = Tools::of(Mode::Nft, Family::V6, None);
        assert_eq!(t.save, PathBuf::from("ip6tables-nft-save"));
        assert_eq!(t.restore, PathBuf::from("ip6tables-nft-restore"));
        let t = Tools::of(Mode::Plain, Family::V6, Some(Path::new("/sbin")));
        assert_eq!(t.save, PathBuf::from("/sbin/ip6tables-save"));
        assert_eq!(t.restore, PathBuf::from("/sbin/ip6tables-restore"));
        assert_eq!(Mode::from_binary_name("iptables-nft"), Some(Mode::Nft));
        assert_eq!(Mode::from_binary_name("iptables"), Some(Mode::Plain));
        assert_eq!(
            Mode::from_binary_name("iptables-legacy"),
            Some(Mode::Legacy)
        );
        assert_eq!(Mode::from_binary_name("nft"), None);
    }

    #[test]
    fn missing_binaries_are_named() {
        let wanted = Tools {
            save: PathBuf::from("/nonexistent/iptables-legacy-save"),
            restore: PathBuf::from("/nonexistent/iptables-legacy-restore"),
        };
        let mut warnings = Vec::new();
        // Whatever this machine has installed, the result is either a
        // fallback (with a warning) or an error naming the wanted binary.
        match resolve(wanted, Family::V4, &mut |w| warnings.push(w)) {
            Ok(t) => {
                assert_eq!(warnings.len(), 1);
                assert!(warnings[0].contains("/nonexistent/iptables-legacy-save"));
                assert!(executable(&t.save) && executable(&t.restore));
            }
            Err(e) => assert!(
                e.to_string()
                    .starts_with("/nonexistent/iptables-legacy-save not found"),
                "{e}"
            ),
        }
    }

    #[test]
    fn failures_say_which_command_and_why() {
        // `false` exits 1 with no output; `sh -c` prints an iptables-like message.
        let e = run(Path::new("false"), &["-t", "nat"], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "false -t nat failed (exit status: 1): no error message"
        );
        let e = run(
            Path::new("sh"),
            &[
                "-c",
                "echo 'x: Permission denied (you must be root)' >&2; exit 4",
            ],
            Some("ignored"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("failed (exit status: 4): x: Permission denied (you must be root)"),
            "{e}"
        );
        let e = run(Path::new("/nonexistent/iptables-save"), &[], None).unwrap_err();
        assert_eq!(e.to_string(), "cannot run /nonexistent/iptables-save");
        assert_eq!(
            run(Path::new("cat"), &[], Some("*nat\nCOMMIT\n")).unwrap(),
            "*nat\nCOMMIT\n"
        );
    }
}
