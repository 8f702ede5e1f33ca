//! The VRRP driver inside the daemon: who owns the VIPs, and a task that
//! runs, restarts (on reload) and stops the driver while publishing its
//! status.
//!
//! VIP ownership: a VIP dpvsd forwards for (a virtual server's address,
//! with `--interface`) is owned by the dataplane ([`Command::SetVipOwned`]:
//! it answers ARP for the VIP and sends the gratuitous ARPs when it becomes
//! owned); any other VIP goes into the kernel as `keepalived --vrrp` does
//! ([`KernelVipOwner`]).

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataplane::{Command, Dataplane};
use tokio::sync::{mpsc, oneshot, watch};
use vrrp::driver::{Driver, VipOwner};
use vrrp::instance::{InstanceStatus, RouteSpec, RuleSpec, VipSpec};
use vrrp::kernel::KernelVipOwner;

use crate::assemble::VrrpPlan;

/// What `dpvsctl vrrp` and the announce rule see.
#[derive(Debug, Clone, Default)]
pub struct VrrpSnapshot {
    pub running: bool,
    pub error: Option<String>,
    pub instances: Vec<InstanceStatus>,
}

/// Requests to the VRRP task.
#[derive(Debug)]
pub enum VrrpMsg {
    /// Stop the running driver (gracefully) and start this plan, with
    /// `forwarded` the VIPs the dataplane owns.
    Restart {
        plan: Option<VrrpPlan>,
        forwarded: BTreeSet<IpAddr>,
    },
    /// Stop gracefully (masters send priority 0), then answer.
    Stop(oneshot::Sender<()>),
}

/// VIP ownership split between the dataplane and the kernel.
#[derive(Debug)]
pub struct Owner {
    dp: Arc<Mutex<Dataplane>>,
    forwarded: BTreeSet<IpAddr>,
    kernel: Option<KernelVipOwner>,
}

impl Owner {
    pub fn new(dp: Arc<Mutex<Dataplane>>, forwarded: BTreeSet<IpAddr>) -> Owner {
        Owner {
            dp,
            forwarded,
            kernel: None,
        }
    }

    /// The kernel owner, opened on first use (only VRRP-only VIPs need it).
    fn kernel(&mut self) -> io::Result<&mut KernelVipOwner> {
        if self.kernel.is_none() {
            self.kernel = Some(KernelVipOwner::new()?);
        }
        self.kernel
            .as_mut()
            .ok_or_else(|| io::Error::other("kernel VIP owner unavailable"))
    }

    /// (dataplane VIPs, kernel VIPs).
    fn split(&self, vips: &[VipSpec]) -> (Vec<IpAddr>, Vec<VipSpec>) {
        let (dp, kernel): (Vec<&VipSpec>, Vec<&VipSpec>) =
            vips.iter().partition(|v| self.forwarded.contains(&v.addr));
        (
            dp.into_iter().map(|v| v.addr).collect(),
            kernel.into_iter().cloned().collect(),
        )
    }

    fn set_owned(&self, vips: &[IpAddr], owned: bool) -> io::Result<()> {
        if vips.is_empty() {
            return Ok(());
        }
        let mut dp = self.dp.lock().unwrap_or_else(|e| e.into_inner());
        dp.apply_all(vips.iter().map(|&vip| Command::SetVipOwned { vip, owned }))
            .map_err(io::Error::other)
    }
}

impl VipOwner for Owner {
    async fn take(&mut self, interface: &str, vips: &[VipSpec]) -> io::Result<()> {
        let (dp, kernel) = self.split(vips);
        self.set_owned(&dp, true)?;
        if !kernel.is_empty() {
            self.kernel()?.take(interface, &kernel).await?;
        }
        Ok(())
    }

    async fn release(&mut self, interface: &str, vips: &[VipSpec]) -> io::Result<()> {
        let (dp, kernel) = self.split(vips);
        self.set_owned(&dp, false)?;
        if !kernel.is_empty() {
            self.kernel()?.release(interface, &kernel).await?;
        }
        Ok(())
    }

    /// `virtual_routes` / `virtual_rules` are kernel routes whoever owns the VIPs.
    async fn take_routes(
        &mut self,
        interface: &str,
        routes: &[RouteSpec],
        rules: &[RuleSpec],
    ) -> io::Result<()> {
        if routes.is_empty() && rules.is_empty() {
            return Ok(());
        }
        self.kernel()?.take_routes(interface, routes, rules).await
    }

    async fn release_routes(
        &mut self,
        interface: &str,
        routes: &[RouteSpec],
        rules: &[RuleSpec],
    ) -> io::Result<()> {
        if routes.is_empty() && rules.is_empty() {
            return Ok(());
        }
        self.kernel()?
            .release_routes(interface, routes, rules)
            .await
    }

    async fn announce(&mut self, interface: &str, vips: &[VipSpec], count: u32) -> io::Result<()> {
        // The dataplane sends its own gratuitous ARPs when a VIP becomes owned.
        let (_, kernel) = self.split(vips);
        if !kernel.is_empty() {
            self.kernel()?.announce(interface, &kernel, count).await?;
        }
        Ok(())
    }
}

/// The ownership each forwarded VIP must have when no driver holds it:
/// VRRP-managed ones not owned, the others owned.
pub fn baseline_ownership(forwarded: &BTreeSet<IpAddr>, plan: Option<&VrrpPlan>) -> Vec<Command> {
    let managed: BTreeSet<IpAddr> = plan
        .map(|p| p.vips().map(|(v, _)| v).collect())
        .unwrap_or_default();
    forwarded
        .iter()
        .map(|&vip| Command::SetVipOwned {
            vip,
            owned: !managed.contains(&vip),
        })
        .collect()
}

/// Starts the VRRP task; `plan` runs at once.
pub fn spawn(
    dp: Arc<Mutex<Dataplane>>,
    plan: Option<VrrpPlan>,
    forwarded: BTreeSet<IpAddr>,
) -> (
    mpsc::UnboundedSender<VrrpMsg>,
    watch::Receiver<VrrpSnapshot>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (out, status) = watch::channel(VrrpSnapshot::default());
    tokio::spawn(manage(dp, plan, forwarded, rx, out));
    (tx, status)
}

struct Running {
    driver: Driver,
    status: watch::Receiver<Vec<InstanceStatus>>,
}

fn start(
    dp: &Arc<Mutex<Dataplane>>,
    plan: Option<&VrrpPlan>,
    forwarded: &BTreeSet<IpAddr>,
    out: &watch::Sender<VrrpSnapshot>,
) -> Option<Running> {
    let plan = plan?;
    let owner = Owner::new(Arc::clone(dp), forwarded.clone());
    let driver = Driver::spawn(plan.config(), owner);
    let status = driver.subscribe();
    tracing::info!(instances = plan.instances.len(), "VRRP started");
    out.send_replace(VrrpSnapshot {
        running: true,
        error: None,
        instances: Vec::new(),
    });
    Some(Running { driver, status })
}

/// Stops a driver gracefully; returns its last status and its error.
async fn stop(r: Running) -> (Vec<InstanceStatus>, Option<String>) {
    let res = r.driver.stop().await;
    let last = r.status.borrow().clone();
    (last, res.err().map(|e| e.to_string()))
}

async fn manage(
    dp: Arc<Mutex<Dataplane>>,
    mut plan: Option<VrrpPlan>,
    mut forwarded: BTreeSet<IpAddr>,
    mut rx: mpsc::UnboundedReceiver<VrrpMsg>,
    out: watch::Sender<VrrpSnapshot>,
) {
    let mut running = start(&dp, plan.as_ref(), &forwarded, &out);
    // A driver that stopped on an error (say its interface has no address
    // yet, as the DPDK exception TAP before the operator configures it) is
    // started again after a pause, as keepalived leaves FAULT.
    let mut retry: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = async {
                match retry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                retry = None;
                running = start(&dp, plan.as_ref(), &forwarded, &out);
            }
            msg = rx.recv() => match msg {
                Some(VrrpMsg::Restart { plan: new_plan, forwarded: fwd }) => {
                    retry = None;
                    plan = new_plan;
                    // Same VIP split: the running driver takes the new plan
                    // in place, and unchanged instances keep their state.
                    if let (Some(r), Some(p), true) = (&running, &plan, fwd == forwarded) {
                        if r.driver.reconfigure(p.config()).await.is_ok() {
                            tracing::info!(instances = p.instances.len(), "VRRP reconfigured in place");
                            continue;
                        }
                    }
                    if let Some(r) = running.take() {
                        if let (_, Some(e)) = stop(r).await {
                            tracing::warn!(error = %e, "VRRP driver had stopped");
                        }
                    }
                    forwarded = fwd;
                    // The old driver released its VIPs; VIPs no longer managed
                    // by VRRP go back to the dataplane.
                    let cmds = baseline_ownership(&forwarded, plan.as_ref());
                    let res = dp.lock().unwrap_or_else(|e| e.into_inner()).apply_all(cmds);
                    if let Err(e) = res {
                        tracing::error!(error = %e, "dataplane refused VIP ownership");
                    }
                    out.send_replace(VrrpSnapshot::default());
                    running = start(&dp, plan.as_ref(), &forwarded, &out);
                }
                Some(VrrpMsg::Stop(done)) => {
                    if let Some(r) = running.take() {
                        let (instances, error) = stop(r).await;
                        out.send_replace(VrrpSnapshot { running: false, error, instances });
                    }
                    let _ = done.send(());
                    return;
                }
                None => {
                    if let Some(r) = running.take() {
                        let _ = stop(r).await;
                    }
                    return;
                }
            },
            alive = async {
                match running.as_mut() {
                    Some(r) => r.status.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => {
                if alive {
                    if let Some(r) = &running {
                        let instances = r.status.borrow().clone();
                        out.send_replace(VrrpSnapshot { running: true, error: None, instances });
                    }
                } else if let Some(r) = running.take() {
                    let (instances, error) = stop(r).await;
                    tracing::error!(error = error.as_deref().unwrap_or("unknown"), "VRRP driver stopped; restarting in 1s");
                    out.send_replace(VrrpSnapshot { running: false, error, instances });
                    retry = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::{DataplaneConfig, Forwarding, Protocol, Scheduler, ServiceKey, ServiceSpec};

    fn owned(dp: &Arc<Mutex<Dataplane>>) -> Option<bool> {
        let st = dp.lock().unwrap_or_else(|e| e.into_inner()).status();
        st.services.first().map(|s| s.vip_owned)
    }

    #[tokio::test]
    async fn forwarded_vips_are_owned_through_the_dataplane() {
        let vip: IpAddr = [10, 0, 0, 1].into();
        let mut dp = Dataplane::new(DataplaneConfig {
            conn_capacity: 16,
            ..DataplaneConfig::default()
        });
        dp.apply(Command::AddService(ServiceSpec {
            key: ServiceKey {
                addr: vip,
                port: 80,
                protocol: Protocol::Tcp,
            },
            scheduler: Scheduler::Rr,
            forwarding: Forwarding::Fnat,
            local_addrs: vec![[10, 0, 0, 200].into()],
            persistence: None,
            protection: Default::default(),
            quic: Default::default(),
            proxy_protocol: None,
            establish_timeout_s: None,
            expire_quiescent: false,
            snat: None,
        }))
        .expect("add service");
        let dp = Arc::new(Mutex::new(dp));
        let plan = VrrpPlan {
            instances: vec![{
                let mut s = vrrp::instance::InstanceSpec::new("VI_1", "eth0", 51);
                s.vips = vec![VipSpec::new(vip)];
                s
            }],
            ..VrrpPlan::default()
        };
        let fwd: BTreeSet<IpAddr> = [vip].into();
        let cmds = baseline_ownership(&fwd, Some(&plan));
        assert_eq!(cmds, vec![Command::SetVipOwned { vip, owned: false }]);
        assert_eq!(
            baseline_ownership(&fwd, None),
            vec![Command::SetVipOwned { vip, owned: true }]
        );
        assert_eq!(owned(&dp), Some(true), "owned by default");
        let mut owner = Owner::new(Arc::clone(&dp), fwd);
        let vips = plan.instances[0].vips.clone();
        owner.release("eth0", &vips).await.expect("release");
        assert_eq!(owned(&dp), Some(false));
        owner.take("eth0", &vips).await.expect("take");
        assert_eq!(owned(&dp), Some(true));
        // The dataplane sends its own GARPs: nothing for the kernel to do.
        owner.announce("eth0", &vips, 3).await.expect("announce");
        assert!(owner.kernel.is_none(), "no kernel owner for forwarded VIPs");
    }
}
