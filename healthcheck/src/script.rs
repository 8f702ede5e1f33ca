//! `enable_script_security` at run time: keepalived refuses to run a script
//! as root when the script, or any directory on its path, could be changed
//! by someone other than root (`check_security` in keepalived's `notify.c`,
//! 2.2.7).
//!
//! A path component is unsafe when it is not owned by root, or when it is
//! writable by its group or by others, except for a directory with the sticky
//! bit (such as `/tmp`), where others cannot replace entries they do not own.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

const S_IWGRP: u32 = 0o020;
const S_IWOTH: u32 = 0o002;
const S_ISVTX: u32 = 0o1000;

/// Why running `program` as root would be unsafe, or `None` when it is safe.
///
/// `program` is the script's first word: a path, or a bare name looked up
/// in `PATH` as the kernel's `execvp` would. A program that cannot be found
/// is reported as such (the spawn would fail anyway).
///
/// ```
/// // /bin/sh and every directory above it belong to root and are not
/// // writable by others on any sane system.
/// assert_eq!(healthcheck::script_insecurity("/bin/sh"), None);
/// assert_eq!(healthcheck::script_insecurity("sh"), None);
/// ```
pub fn script_insecurity(program: &str) -> Option<String> {
    let Some(path) = resolve(program) else {
        return Some(format!("{program} not found"));
    };
    // Every prefix of the absolute path: /, /usr, /usr/bin, /usr/bin/x.
    let mut prefix = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => continue,
            other => prefix.push(other),
        }
        if let Some(reason) = unsafe_component(&prefix) {
            return Some(reason);
        }
    }
    None
}

/// `program` as an absolute path: a name without `/` is searched in `PATH`.
fn resolve(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return std::path::absolute(program).ok();
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .and_then(|found| std::path::absolute(found).ok())
}

fn unsafe_component(path: &Path) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Some(format!("cannot check {}: {e}", path.display())),
    };
    let mode = meta.permissions().mode();
    if meta.uid() != 0 {
        return Some(format!(
            "{} is owned by uid {}, not root",
            path.display(),
            meta.uid()
        ));
    }
    let sticky_dir = meta.is_dir() && mode & S_ISVTX != 0;
    if !sticky_dir && mode & (S_IWGRP | S_IWOTH) != 0 {
        let who = if mode & S_IWOTH != 0 {
            "others"
        } else {
            "its group"
        };
        return Some(format!(
            "{} (mode {:o}) is writable by {who}",
            path.display(),
            mode & 0o7777
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        // Under /tmp (root-owned, sticky) so that only our own modes matter.
        let dir = PathBuf::from("/tmp").join(format!("hc-script-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        dir
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn unsafe_modes_and_owners_are_refused() {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIP: needs root to own the test files as root");
            return;
        }
        let dir = scratch("modes");
        let script = dir.join("check.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write");
        chmod(&script, 0o755);
        let text = script.display().to_string();
        assert_eq!(script_insecurity(&text), None);

        chmod(&script, 0o775);
        assert_eq!(
            script_insecurity(&text),
            Some(format!("{text} (mode 775) is writable by its group"))
        );
        chmod(&script, 0o757);
        assert_eq!(
            script_insecurity(&text),
            Some(format!("{text} (mode 757) is writable by others"))
        );

        // A writable directory on the path, without the sticky bit.
        chmod(&script, 0o755);
        chmod(&dir, 0o777);
        assert_eq!(
            script_insecurity(&text),
            Some(format!(
                "{} (mode 777) is writable by others",
                dir.display()
            ))
        );
        // With the sticky bit (like /tmp) the directory is fine.
        chmod(&dir, 0o1777);
        assert_eq!(script_insecurity(&text), None);

        // Owned by someone else.
        chmod(&dir, 0o755);
        nix::unistd::chown(&script, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
        assert_eq!(
            script_insecurity(&text),
            Some(format!("{text} is owned by uid 65534, not root"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_programs_are_reported() {
        assert_eq!(
            script_insecurity("no-such-program-dpvsd-test"),
            Some("no-such-program-dpvsd-test not found".into())
        );
        let reason = script_insecurity("/no/such/dir/x").expect("refused");
        assert!(reason.starts_with("cannot check /no: "), "{reason}");
    }
}
