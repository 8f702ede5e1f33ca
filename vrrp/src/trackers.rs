//! The driver's own trackers: `vrrp_script` runs (interval, timeout,
//! rise/fall through [`ScriptState`], `user`), `vrrp_track_file` values and
//! the link state of instance and tracked interfaces. Each reports changes as
//! [`TrackerEvent`]s; [`start`] returns the initial statuses so the instances
//! start with them.

use crate::driver::{Config, TrackerEvent};
use crate::track::{FileSpec, ScriptSpec, ScriptState, TrackKind, TrackStatus};
use nix::net::if_::InterfaceFlags;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// How often links are looked at.
const LINK_POLL: Duration = Duration::from_millis(100);
/// How often tracked files are read.
const FILE_POLL: Duration = Duration::from_millis(200);

fn link_states(names: &BTreeSet<String>) -> BTreeMap<String, bool> {
    let mut out: BTreeMap<String, bool> = names.iter().map(|n| (n.clone(), false)).collect();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            if let Some(up) = out.get_mut(&ifa.interface_name) {
                *up = ifa
                    .flags
                    .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING);
            }
        }
    }
    out
}

/// The integer in a tracked file (keepalived reads it with `strtol`): the
/// leading integer of the contents, 0 if there is none or it cannot be read.
pub(crate) fn read_file_value(path: &std::path::Path) -> i64 {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    let t = text.trim_start();
    let end = t
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(t.len(), |(i, _)| i);
    t.get(..end).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn track_event(kind: TrackKind, name: &str, status: TrackStatus) -> TrackerEvent {
    TrackerEvent::Track {
        kind,
        name: name.to_owned(),
        status,
    }
}

/// Starts every tracker `config` uses on `set`, reporting changes on `tx`;
/// returns the initial statuses.
pub(crate) fn start(
    config: &Config,
    tx: &mpsc::Sender<TrackerEvent>,
    set: &mut JoinSet<()>,
) -> Vec<TrackerEvent> {
    let tracks: Vec<_> = config
        .instances
        .iter()
        .flat_map(|i| &i.tracks)
        .chain(config.groups.iter().flat_map(|g| &g.tracks))
        .collect();
    let used = |kind: TrackKind| -> BTreeSet<String> {
        tracks
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.name.clone())
            .collect()
    };
    let mut initial = Vec::new();

    let own: BTreeSet<String> = config
        .instances
        .iter()
        .map(|i| i.interface.clone())
        .collect();
    let tracked = used(TrackKind::Interface);
    let all: BTreeSet<String> = own.union(&tracked).cloned().collect();
    let states = link_states(&all);
    for (name, &up) in &states {
        initial.extend(link_events(name, up, &own, &tracked));
    }
    set.spawn(watch_links(states, own, tracked, tx.clone()));

    for name in used(TrackKind::Script) {
        match config.scripts.iter().find(|s| s.name == name) {
            Some(spec) => {
                let state = ScriptState::new(spec);
                initial.push(track_event(TrackKind::Script, &name, state.status()));
                set.spawn(run_script(spec.clone(), state, tx.clone()));
            }
            None => tracing::warn!(script = %name, "track_script: no such vrrp_script, ignored"),
        }
    }

    for name in used(TrackKind::File) {
        match config.files.iter().find(|f| f.name == name) {
            Some(spec) => {
                let value = read_file_value(&spec.path);
                initial.push(track_event(
                    TrackKind::File,
                    &name,
                    TrackStatus::Value(value),
                ));
                set.spawn(watch_file(spec.clone(), value, tx.clone()));
            }
            None => {
                tracing::warn!(file = %name, "track_file: no such vrrp_track_file, ignored")
            }
        }
    }
    initial
}

fn link_events(
    name: &str,
    up: bool,
    own: &BTreeSet<String>,
    tracked: &BTreeSet<String>,
) -> Vec<TrackerEvent> {
    let mut out = Vec::new();
    if own.contains(name) {
        out.push(TrackerEvent::Link {
            interface: name.to_owned(),
            up,
        });
    }
    if tracked.contains(name) {
        let status = if up {
            TrackStatus::Up
        } else {
            TrackStatus::Down
        };
        out.push(track_event(TrackKind::Interface, name, status));
    }
    out
}

async fn watch_links(
    mut last: BTreeMap<String, bool>,
    own: BTreeSet<String>,
    tracked: BTreeSet<String>,
    tx: mpsc::Sender<TrackerEvent>,
) {
    let names: BTreeSet<String> = last.keys().cloned().collect();
    if names.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(LINK_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (name, up) in link_states(&names) {
            if last.insert(name.clone(), up) != Some(up) {
                tracing::info!(interface = %name, up, "link changed");
                for ev in link_events(&name, up, &own, &tracked) {
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn watch_file(spec: FileSpec, mut last: i64, tx: mpsc::Sender<TrackerEvent>) {
    let mut tick = tokio::time::interval(FILE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let value = read_file_value(&spec.path);
        if value != last {
            last = value;
            tracing::info!(file = %spec.name, value, "track_file changed");
            let ev = track_event(TrackKind::File, &spec.name, TrackStatus::Value(value));
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    }
}

async fn run_script(spec: ScriptSpec, mut state: ScriptState, tx: mpsc::Sender<TrackerEvent>) {
    let mut tick = tokio::time::interval(spec.interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error = None;
    loop {
        tick.tick().await;
        let result = run_once(&spec).await;
        if let Err(e) = &result {
            if last_error.as_ref() != Some(e) {
                tracing::warn!(script = %spec.name, "vrrp_script: {e}");
            }
        }
        last_error = result.as_ref().err().cloned();
        if let Some(status) = state.record(result == Ok(true)) {
            tracing::info!(script = %spec.name, ?status, "vrrp_script changed");
            if tx
                .send(track_event(TrackKind::Script, &spec.name, status))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// One run: `Ok(success)`, or why it could not run or timed out.
async fn run_once(spec: &ScriptSpec) -> Result<bool, String> {
    let (prog, args) = spec.command.split_first().ok_or("empty command")?;
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some((user, group)) = &spec.user {
        let u = nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .ok_or_else(|| format!("unknown user {user}"))?;
        let gid = match group {
            Some(g) => {
                nix::unistd::Group::from_name(g)
                    .ok()
                    .flatten()
                    .ok_or_else(|| format!("unknown group {g}"))?
                    .gid
            }
            None => u.gid,
        };
        cmd.uid(u.uid.as_raw()).gid(gid.as_raw());
    }
    let mut child = cmd.spawn().map_err(|e| format!("{prog}: {e}"))?;
    match tokio::time::timeout(spec.timeout(), child.wait()).await {
        Ok(Ok(status)) => Ok(status.success()),
        Ok(Err(e)) => Err(format!("{prog}: {e}")),
        Err(_) => {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // The whole process group: the script and whatever it started.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            Err(format!("timed out after {:?}", spec.timeout()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::InstanceSpec;
    use crate::track::TrackSpec;

    #[test]
    fn file_values_parse_like_strtol() {
        let dir = std::env::temp_dir().join(format!("vrrp-trk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let p = dir.join("v");
        for (text, want) in [("42\n", 42), ("  -7 apples", -7), ("x", 0), ("", 0)] {
            std::fs::write(&p, text).expect("write");
            assert_eq!(read_file_value(&p), want, "{text:?}");
        }
        assert_eq!(read_file_value(&dir.join("missing")), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn scripts_apply_rise_fall_and_timeout() {
        let mut ok = ScriptSpec::new("ok", vec!["/bin/true".into()]);
        ok.interval = Duration::from_millis(20);
        let mut slow = ScriptSpec::new("slow", vec!["/bin/sleep".into(), "5".into()]);
        slow.interval = Duration::from_millis(20);
        slow.timeout = Some(Duration::from_millis(50));
        let mut fails = ScriptSpec::new("fails", vec!["/bin/false".into()]);
        fails.interval = Duration::from_millis(20);
        fails.fall = 2;
        let mut inst = InstanceSpec::new("vi", "lo", 1);
        for name in ["ok", "slow", "fails", "nosuch"] {
            inst.tracks.push(TrackSpec {
                kind: TrackKind::Script,
                name: name.into(),
                weight: 0,
                reverse: false,
            });
        }
        let config = Config {
            instances: vec![inst],
            scripts: vec![ok, slow, fails],
            ..Config::default()
        };
        let (tx, mut rx) = mpsc::channel(16);
        let mut set = JoinSet::new();
        let initial = start(&config, &tx, &mut set);
        let up = initial
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    TrackerEvent::Track {
                        kind: TrackKind::Script,
                        status: TrackStatus::Up,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(up, 3, "{initial:?}");
        let mut down = BTreeSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while down.len() < 2 {
            let ev = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("scripts reported in time")
                .expect("channel open");
            if let TrackerEvent::Track {
                kind: TrackKind::Script,
                name,
                status: TrackStatus::Down,
            } = ev
            {
                down.insert(name);
            }
        }
        assert_eq!(
            down,
            BTreeSet::from(["fails".to_owned(), "slow".to_owned()])
        );
        set.abort_all();
    }
}
