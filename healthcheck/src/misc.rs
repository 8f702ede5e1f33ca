//! `MISC_CHECK`: run a script; its exit status decides.
//!
//! The script runs directly (no shell) in its own process group with stdio
//! on `/dev/null`. Exit statuses (KEEPALIVED.md §9 "misc_dynamic", 2.2.7):
//!
//! | status | without `misc_dynamic` | with `misc_dynamic` |
//! |---|---|---|
//! | 0 | success | success, weight delta 0 |
//! | 1 | failure | failure |
//! | 2..=255 | failure | success, weight delta `status - 2 - iweight` |
//! | signal, timeout | failure | failure |
//!
//! On timeout the whole group gets SIGTERM, and SIGKILL [`KILL_GRACE`]
//! later if the script is still running. If the probe itself is cancelled
//! (subject removed), the group gets SIGKILL at once.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Group, Pid, User};
use tokio::process::Command;

use crate::error::ProbeError;
use crate::spec::MiscSpec;

/// How long a timed-out script has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// The longest a notify script may run before its process group is killed
/// (keepalived sets no limit; dpvsd bounds every child).
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a notify script (`quorum_up`, `quorum_down`, ...) as `MISC_CHECK`
/// runs its script: no shell, own process group, `user`/`group`,
/// `enable_script_security`, killed after [`NOTIFY_TIMEOUT`].
///
/// # Errors
///
/// The script could not start, was refused, timed out, was killed, or
/// exited with a status other than 0.
pub async fn run_script(script: &MiscSpec) -> Result<(), ProbeError> {
    let plain = MiscSpec {
        dynamic: false,
        ..script.clone()
    };
    probe(&plain, NOTIFY_TIMEOUT).await.map(|_| ())
}

/// Runs the script. `Ok(Some(delta))` reports this checker's weight delta
/// (`misc_dynamic` only); `Ok(None)` is a plain success.
///
/// `default_timeout` applies when `misc.timeout` is unset or zero.
pub(crate) async fn probe(
    misc: &MiscSpec,
    default_timeout: Duration,
) -> Result<Option<i64>, ProbeError> {
    let Some((program, args)) = misc.argv.split_first() else {
        return Err(start_error("", "empty misc_path"));
    };
    if misc.secure && runs_as_root(misc) {
        if let Some(reason) = crate::script::script_insecurity(program) {
            return Err(start_error(
                program,
                format!("refused by enable_script_security: {reason}"),
            ));
        }
    }
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    set_credentials(&mut command, misc).map_err(|message| start_error(program, message))?;
    let mut child = command
        .spawn()
        .map_err(|e| start_error(program, e.to_string()))?;
    let mut group = GroupGuard(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );

    let timeout = misc
        .timeout
        .filter(|t| !t.is_zero())
        .unwrap_or(default_timeout);
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => {
            group.disarm();
            status.map_err(|e| start_error(program, format!("wait: {e}")))?
        }
        Err(_elapsed) => {
            group.signal(Signal::SIGTERM);
            if tokio::time::timeout(KILL_GRACE, child.wait())
                .await
                .is_err()
            {
                group.signal(Signal::SIGKILL);
                // Reap it; SIGKILL cannot be ignored.
                let _reaped = child.wait().await;
            }
            group.disarm();
            return Err(ProbeError::ScriptTimeout { after: timeout });
        }
    };
    match status.code() {
        Some(0) => Ok(misc.dynamic.then_some(0)),
        Some(code @ 2..=255) if misc.dynamic => Ok(Some(i64::from(code) - 2 - misc.weight)),
        Some(code) => Err(ProbeError::ScriptExit { code }),
        None => Err(ProbeError::ScriptSignal {
            signal: status.signal().unwrap_or_default(),
        }),
    }
}

/// Whether the script would run as root: dpvsd is root and no other user is
/// configured.
fn runs_as_root(misc: &MiscSpec) -> bool {
    nix::unistd::geteuid().is_root() && misc.user.as_deref().is_none_or(|u| u == "root")
}

fn start_error(program: &str, message: impl Into<String>) -> ProbeError {
    ProbeError::ScriptStart {
        program: program.to_owned(),
        message: message.into(),
    }
}

/// `user USER [GROUP]`: the user's uid, and the group's gid (else the
/// user's primary group).
fn set_credentials(command: &mut Command, misc: &MiscSpec) -> Result<(), String> {
    if let Some(name) = &misc.user {
        let user = User::from_name(name)
            .map_err(|e| format!("looking up user {name}: {e}"))?
            .ok_or_else(|| format!("unknown user {name}"))?;
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    if let Some(name) = &misc.group {
        let group = Group::from_name(name)
            .map_err(|e| format!("looking up group {name}: {e}"))?
            .ok_or_else(|| format!("unknown group {name}"))?;
        command.gid(group.gid.as_raw());
    }
    Ok(())
}

/// The script's process group; SIGKILLed on drop unless disarmed, so a
/// cancelled probe leaves nothing running.
#[derive(Debug)]
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.0 {
            if let Err(e) = killpg(pgid, signal) {
                tracing::debug!(%pgid, %signal, error = %e, "signalling the script's process group");
            }
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    const LONG: Duration = Duration::from_secs(30);

    fn sh(script: &str) -> MiscSpec {
        MiscSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            ..MiscSpec::default()
        }
    }

    fn dynamic(script: &str, weight: i64) -> MiscSpec {
        MiscSpec {
            dynamic: true,
            weight,
            ..sh(script)
        }
    }

    /// A fresh scratch directory for this test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("healthcheck-misc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[tokio::test]
    async fn exit_status_without_dynamic() {
        assert_eq!(probe(&sh("exit 0"), LONG).await, Ok(None));
        assert_eq!(
            probe(&sh("exit 1"), LONG).await,
            Err(ProbeError::ScriptExit { code: 1 })
        );
        assert_eq!(
            probe(&sh("exit 12"), LONG).await,
            Err(ProbeError::ScriptExit { code: 12 })
        );
    }

    #[tokio::test]
    async fn exit_status_with_dynamic() {
        // keepalived 2.2.7: delta = status - 2 - iweight, so the weight
        // becomes status - 2.
        assert_eq!(probe(&dynamic("exit 0", 5), LONG).await, Ok(Some(0)));
        assert_eq!(probe(&dynamic("exit 12", 5), LONG).await, Ok(Some(5)));
        assert_eq!(probe(&dynamic("exit 2", 5), LONG).await, Ok(Some(-5)));
        assert_eq!(probe(&dynamic("exit 255", 0), LONG).await, Ok(Some(253)));
        assert_eq!(
            probe(&dynamic("exit 1", 5), LONG).await,
            Err(ProbeError::ScriptExit { code: 1 })
        );
    }

    #[tokio::test]
    async fn death_by_signal_fails() {
        assert_eq!(
            probe(&dynamic("kill -KILL $$", 1), LONG).await,
            Err(ProbeError::ScriptSignal { signal: 9 })
        );
    }

    #[tokio::test]
    async fn missing_or_unusable_scripts_fail_clearly() {
        let dir = scratch("unusable");
        let missing = dir.join("missing.sh");
        let misc = MiscSpec {
            argv: vec![missing.display().to_string()],
            ..MiscSpec::default()
        };
        let err = probe(&misc, LONG).await.expect_err("missing");
        assert!(
            matches!(&err, ProbeError::ScriptStart { program, .. } if *program == missing.display().to_string()),
            "{err:?}"
        );
        assert!(err.to_string().contains("No such file"), "{err}");

        let plain = dir.join("plain.sh");
        std::fs::write(&plain, "#!/bin/sh\nexit 0\n").expect("write script");
        let misc = MiscSpec {
            argv: vec![plain.display().to_string()],
            ..MiscSpec::default()
        };
        let err = probe(&misc, LONG).await.expect_err("not executable");
        assert!(err.to_string().contains("ermission denied"), "{err}");

        let err = probe(&MiscSpec::default(), LONG).await.expect_err("empty");
        assert_eq!(err.to_string(), "cannot run : empty misc_path");

        let misc = MiscSpec {
            user: Some("no-such-user-dpvsd-test".into()),
            ..sh("exit 0")
        };
        let err = probe(&misc, LONG).await.expect_err("unknown user");
        assert!(
            err.to_string()
                .ends_with("unknown user no-such-user-dpvsd-test"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn script_security_refuses_unsafe_scripts_run_as_root() {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIP: script security only applies when running as root");
            return;
        }
        let dir = scratch("security");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let script = dir.join("check.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o757)).expect("chmod");
        let text = script.display().to_string();
        let misc = MiscSpec {
            argv: vec![text.clone()],
            secure: true,
            ..MiscSpec::default()
        };
        let err = probe(&misc, LONG).await.expect_err("refused");
        assert_eq!(
            err.to_string(),
            format!("cannot run {text}: refused by enable_script_security: {text} (mode 757) is writable by others")
        );
        // Without enable_script_security, or as another user, it runs.
        let open = MiscSpec {
            secure: false,
            ..misc.clone()
        };
        assert_eq!(probe(&open, LONG).await, Ok(None));
        let nobody = MiscSpec {
            user: Some("nobody".into()),
            ..misc.clone()
        };
        assert_eq!(probe(&nobody, LONG).await, Ok(None));
        // Made safe, it runs with security on.
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(probe(&misc, LONG).await, Ok(None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
    fn is_dead(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = scratch("timeout");
        let pidfile = dir.join("bg.pid");
        // Ignores SIGTERM, so SIGKILL is needed; leaves a background child
        // in its group.
        let script = format!(
            "trap '' TERM; sleep 30 & echo $! > {}; wait",
            pidfile.display()
        );
        let misc = MiscSpec {
            timeout: Some(Duration::from_millis(300)),
            ..sh(&script)
        };
        assert_eq!(
            probe(&misc, LONG).await,
            Err(ProbeError::ScriptTimeout {
                after: Duration::from_millis(300)
            })
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        let mut dead = false;
        for _ in 0..100 {
            dead = is_dead(pid);
            if dead {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(dead, "background child {pid} survived");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn unset_timeout_uses_the_default() {
        let misc = MiscSpec {
            timeout: Some(Duration::ZERO),
            ..sh("exec sleep 30")
        };
        let default = Duration::from_millis(200);
        assert_eq!(
            probe(&misc, default).await,
            Err(ProbeError::ScriptTimeout { after: default })
        );
    }
}
