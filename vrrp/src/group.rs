//! Sync groups: instances that move together (keepalived `vrrp_sync_group`).
//!
//! [`Router`] owns every instance. After each event it applies the group
//! rules: when a member enters MASTER or BACKUP the others follow; a FAULT
//! condition of any member holds all of them in FAULT until every member is
//! clear. Group trackers are added to every member; weighted trackers of
//! members are ignored unless `sync_group_tracking_weight` is set.

use crate::instance::{Action, Event, Instance, InstanceSpec, InstanceStatus, State};
use crate::track::TrackSpec;
use std::time::Instant;

/// A `vrrp_sync_group`, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupSpec {
    /// Group name.
    pub name: String,
    /// Member instance names (`group { ... }`).
    pub members: Vec<String>,
    /// Group-level `track_*` lines, applied to every member.
    pub tracks: Vec<TrackSpec>,
    /// `sync_group_tracking_weight`.
    pub tracking_weight: bool,
}

/// Index of an instance in a [`Router`] (the order of the specs given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceIdx(pub usize);

/// Configuration errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Two instances share a name.
    #[error("duplicate vrrp_instance name {name}")]
    DuplicateInstance {
        /// The name.
        name: String,
    },
    /// A group names an instance that does not exist.
    #[error("vrrp_sync_group {group}: unknown instance {instance}")]
    UnknownMember {
        /// Group name.
        group: String,
        /// Instance name.
        instance: String,
    },
    /// An instance is in two groups.
    #[error("vrrp_instance {instance} is in more than one sync group")]
    TwoGroups {
        /// Instance name.
        instance: String,
    },
}

/// All instances of a daemon and their sync groups.
#[derive(Debug)]
pub struct Router {
    instances: Vec<Instance>,
    groups: Vec<Vec<usize>>,
    group_of: Vec<Option<usize>>,
}

impl Router {
    /// Builds the instances (all in INIT, starting at `now`).
    ///
    /// # Errors
    /// A [`SpecError`] for duplicate names or bad group membership.
    pub fn new(
        mut specs: Vec<InstanceSpec>,
        groups: Vec<SyncGroupSpec>,
        now: Instant,
    ) -> Result<Router, SpecError> {
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|o| o.name == s.name) {
                return Err(SpecError::DuplicateInstance {
                    name: s.name.clone(),
                });
            }
        }
        let mut group_of = vec![None; specs.len()];
        let mut members_of = Vec::new();
        let mut ignore = vec![false; specs.len()];
        for (gi, g) in groups.iter().enumerate() {
            let mut members = Vec::new();
            for m in &g.members {
                let i = specs.iter().position(|s| &s.name == m).ok_or_else(|| {
                    SpecError::UnknownMember {
                        group: g.name.clone(),
                        instance: m.clone(),
                    }
                })?;
                if group_of[i].is_some() {
                    return Err(SpecError::TwoGroups {
                        instance: m.clone(),
                    });
                }
                group_of[i] = Some(gi);
                specs[i].tracks.extend(g.tracks.iter().cloned());
                ignore[i] = !g.tracking_weight;
                members.push(i);
            }
            members_of.push(members);
        }
        let instances = specs
            .into_iter()
            .zip(ignore)
            .map(|(s, ign)| {
                let mut inst = Instance::new(s, now);
                inst.set_ignore_weights(ign);
                inst
            })
            .collect();
        Ok(Router {
            instances,
            groups: members_of,
            group_of,
        })
    }

    /// The sync group of the instance named `name`, if any.
    fn group_spec<'a>(groups: &'a [SyncGroupSpec], name: &str) -> Option<&'a SyncGroupSpec> {
        groups.iter().find(|g| g.members.iter().any(|m| m == name))
    }

    /// Reload: moves every instance of `self` whose spec and sync group
    /// (`old_groups` here, `new_groups` in `next`) are unchanged into
    /// `next`, in place of the fresh one there, so it keeps its state,
    /// timers and counters. Returns the indices in `self` that were handed
    /// over; what is left there at those indices is the fresh INIT instance
    /// and must not be run. The other instances of `self` are the removed
    /// or changed ones (the caller shuts them down).
    pub fn hand_over(
        &mut self,
        old_groups: &[SyncGroupSpec],
        next: &mut Router,
        new_groups: &[SyncGroupSpec],
    ) -> Vec<InstanceIdx> {
        let mut kept = Vec::new();
        for (i, old) in self.instances.iter_mut().enumerate() {
            let name = old.spec().name.clone();
            let Some(j) = next.instances.iter().position(|n| n.spec().name == name) else {
                continue;
            };
            let same = next.instances[j].spec() == old.spec()
                && Self::group_spec(old_groups, &name) == Self::group_spec(new_groups, &name);
            if same {
                std::mem::swap(old, &mut next.instances[j]);
                kept.push(InstanceIdx(i));
            }
        }
        kept
    }

    /// The instances, indexed by [`InstanceIdx`].
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The instance with this name.
    pub fn find(&self, name: &str) -> Option<InstanceIdx> {
        self.instances
            .iter()
            .position(|i| i.spec().name == name)
            .map(InstanceIdx)
    }

    /// The instance at `idx`.
    pub fn get(&self, idx: InstanceIdx) -> Option<&Instance> {
        self.instances.get(idx.0)
    }

    /// Status snapshots of every instance.
    pub fn status(&self) -> Vec<InstanceStatus> {
        self.instances.iter().map(Instance::status).collect()
    }

    /// The earliest timer of any instance.
    pub fn poll_at(&self) -> Option<Instant> {
        self.instances.iter().filter_map(Instance::poll_at).min()
    }

    /// Delivers [`Event::Timer`] to every instance that is due.
    pub fn on_timer(&mut self, now: Instant) -> Vec<(InstanceIdx, Action)> {
        let mut out = Vec::new();
        for i in 0..self.instances.len() {
            if self.instances[i].poll_at().is_some_and(|t| t <= now) {
                out.extend(self.handle(InstanceIdx(i), Event::Timer, now));
            }
        }
        out
    }

    /// Delivers an event to every instance (trackers, shutdown).
    pub fn broadcast(&mut self, event: Event<'_>, now: Instant) -> Vec<(InstanceIdx, Action)> {
        let mut out = Vec::new();
        for i in 0..self.instances.len() {
            out.extend(self.handle(InstanceIdx(i), event, now));
        }
        out
    }

    /// Delivers an event to one instance and applies the sync-group rules.
    /// An unknown index does nothing.
    pub fn handle(
        &mut self,
        idx: InstanceIdx,
        event: Event<'_>,
        now: Instant,
    ) -> Vec<(InstanceIdx, Action)> {
        let Some(inst) = self.instances.get_mut(idx.0) else {
            return Vec::new();
        };
        let before = inst.state();
        let mut out: Vec<(InstanceIdx, Action)> = inst
            .handle(event, now)
            .into_iter()
            .map(|a| (idx, a))
            .collect();
        let after = inst.state();
        let Some(g) = self.group_of[idx.0] else {
            return out;
        };
        let members = self.groups[g].clone();
        // FAULT of one holds all; clearing needs every member clear.
        let fault = members.iter().any(|&m| self.instances[m].own_fault());
        for &m in &members {
            for a in self.instances[m].set_group_fault(fault, now) {
                out.push((InstanceIdx(m), a));
            }
        }
        if before != after && matches!(after, State::Master | State::Backup) && !fault {
            for &m in members.iter().filter(|&&m| m != idx.0) {
                if self.instances[m].state() != State::Init {
                    for a in self.instances[m].force(after, now) {
                        out.push((InstanceIdx(m), a));
                    }
                }
            }
        }
        out
    }
}
