//! The one path for every change of a running lab:
//! validate (the model, before this is called) → persist → namespaces and devices → compile →
//! publish → wait for in-flight packets → reset moved flows → answer.
//!
//! Invariants: changes are serialised by one lock; the world on disk is always the last
//! acknowledged one (written to a temporary file, fsync'd, renamed, directory fsync'd) before
//! anything else changes, so a `kill -9` at any point resumes to an acknowledged world; the data
//! plane never sees a half-applied change (one snapshot publish).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::setup::{self, NsSpec, RunRecord};
use crate::dataplane::Pipeline;
use crate::fib::{FIRST_SUBNET_PORT, PortId, Snapshot};
use crate::io::netns;
use crate::io::worker::{self, IoCounters, PortTable};
use crate::model::World;
use crate::services::access::Access;

/// What the state dir keeps of a lab: the world and the port of each subnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Saved {
    pub world: World,
    pub ports: BTreeMap<String, PortId>,
}

impl Saved {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("world.json")
    }

    pub fn load(state_dir: &Path) -> anyhow::Result<Option<Saved>> {
        match std::fs::read(Self::path(state_dir)) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", Self::path(state_dir).display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("reading the saved world"),
        }
    }

    /// Durable before it returns: temporary file, fsync, rename, fsync of the directory.
    pub fn store(&self, state_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let path = Self::path(state_dir);
        let tmp = path.with_extension("json.tmp");
        let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        File::open(state_dir)?.sync_all()?;
        Ok(())
    }

    /// Ports for subnets that have none yet (new subnets), never reusing a number in use.
    pub fn assign_ports(&mut self) {
        let known: std::collections::HashSet<&str> =
            self.world.subnets.iter().map(|s| s.id.as_str()).collect();
        self.ports.retain(|id, _| known.contains(id.as_str()));
        let mut next = self.ports.values().copied().max().map_or(FIRST_SUBNET_PORT, |p| p + 1);
        for s in &self.world.subnets {
            if !self.ports.contains_key(&s.id) {
                self.ports.insert(s.id.clone(), next);
                next += 1;
            }
        }
    }

    pub fn spec(&self) -> BTreeMap<String, NsSpec> {
        setup::spec(&self.world, &|id| self.ports.get(id).copied())
    }

    pub fn snapshot(&self, generation: u64) -> Snapshot {
        Snapshot::compile(&self.world, generation, &|id| self.ports.get(id).copied())
    }
}

struct State {
    saved: Saved,
    generation: u64,
    record: RunRecord,
}

/// A running lab's control plane.
pub struct Control {
    state: Mutex<State>,
    /// Users and endpoint policies for the services, republished with every change.
    pub access: Arc<arc_swap::ArcSwap<Access>>,
    pub pipeline: Arc<Pipeline>,
    pub ports: Arc<PortTable>,
    pub io: Arc<IoCounters>,
    state_dir: PathBuf,
}

/// What a change did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub generation: u64,
    pub resets: usize,
}

impl Control {
    /// Takes over a lab whose namespaces exist and whose world is saved, and starts a worker on
    /// every port.
    pub fn start(
        saved: Saved,
        record: RunRecord,
        state_dir: PathBuf,
    ) -> anyhow::Result<Arc<Control>> {
        let pipeline = Arc::new(Pipeline::new(saved.snapshot(1)));
        let ports = Arc::new(PortTable::from_pointee(Vec::new()));
        let io = Arc::new(IoCounters::default());
        let access =
            Access::from_world(&saved.world, propagation_delay(&saved.world), None, Instant::now());
        let control = Arc::new(Control {
            state: Mutex::new(State { saved: saved.clone(), generation: 1, record }),
            access: Arc::new(arc_swap::ArcSwap::from_pointee(access)),
            pipeline,
            ports,
            io,
            state_dir,
        });
        for (ns, spec) in saved.spec() {
            control.attach(&ns, spec.port)?;
        }
        Ok(control)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the last applied state, which is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the current world.
    pub fn world(&self) -> World {
        self.lock().saved.world.clone()
    }

    pub fn record(&self) -> RunRecord {
        self.lock().record.clone()
    }

    fn attach(&self, ns: &str, port: PortId) -> anyhow::Result<()> {
        let dev = worker::attach(ns)?;
        let mut table: Vec<_> = self.ports.load().as_ref().clone();
        let idx = usize::from(port);
        if table.len() <= idx {
            table.resize(idx + 1, None);
        }
        table[idx] = Some(dev.clone());
        self.ports.store(Arc::new(table));
        worker::spawn(ns, port, dev, self.pipeline.clone(), self.ports.clone(), self.io.clone())?;
        Ok(())
    }

    fn detach(&self, port: PortId) {
        let mut table: Vec<_> = self.ports.load().as_ref().clone();
        if let Some(slot) = table.get_mut(usize::from(port)) {
            *slot = None;
        }
        self.ports.store(Arc::new(table));
    }

    /// Runs `decide` on the current world under the change lock. If it returns a new world, the
    /// change is applied through the one path before this returns.
    pub fn change<R, E>(
        &self,
        decide: impl FnOnce(&World) -> Result<(Option<World>, R), E>,
    ) -> Result<Result<R, E>, anyhow::Error> {
        let mut st = self.lock();
        let (new_world, answer) = match decide(&st.saved.world) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(world) = new_world
            && let Err(e) = self.apply(&mut st, world)
        {
            // Not acknowledged: put the last acknowledged world back on disk.
            if let Err(e2) = st.saved.store(&self.state_dir) {
                tracing::error!(error = %e2, "restoring the saved world");
            }
            return Err(e);
        }
        Ok(Ok(answer))
    }

    fn apply(&self, st: &mut State, world: World) -> anyhow::Result<Applied> {
        let old_spec = st.saved.spec();
        let mut saved = Saved { world, ports: st.saved.ports.clone() };
        saved.assign_ports();
        let new_spec = saved.spec();
        // Durable first: an acknowledged change must survive kill -9.
        saved.store(&self.state_dir)?;

        // Namespaces and devices: new subnets get theirs before the snapshot routes to them.
        let mut record = st.record.clone();
        for (ns, spec) in &new_spec {
            match old_spec.get(ns) {
                None => {
                    record.namespaces.push((ns.clone(), spec.port));
                    record.save()?;
                    setup::create_ns(ns, spec)?;
                    self.attach(ns, spec.port)?;
                }
                Some(old) => setup::update_ns(ns, old, spec)?,
            }
        }
        let generation = st.generation + 1;
        let old_access = self.access.load_full();
        let delay = propagation_delay(&saved.world);
        self.access.store(Arc::new(Access::from_world(
            &saved.world,
            delay,
            Some(&old_access),
            Instant::now(),
        )));
        self.pipeline.publish(saved.snapshot(generation));
        worker::quiesce(&self.ports);
        let resets = self.pipeline.reset_moved_flows();
        worker::inject(&self.ports, &resets, &self.io);
        // Removed subnets lose their namespace after nothing routes to them any more.
        for (ns, spec) in &old_spec {
            if !new_spec.contains_key(ns) {
                self.detach(spec.port);
                setup::remove(&[(ns.clone(), spec.port)]);
                record.namespaces.retain(|(n, _)| n != ns);
            }
        }
        if record.namespaces != st.record.namespaces {
            record.save()?;
        }
        st.record = record;
        st.saved = saved;
        st.generation = generation;
        tracing::info!(generation, resets = resets.len(), "change applied");
        Ok(Applied { generation, resets: resets.len() })
    }
}

/// Brings up the namespaces of `saved`: created fresh, or (after a crash, `reattach`) taken
/// over as they are and completed.
pub fn build_namespaces(saved: &Saved, reattach: bool) -> anyhow::Result<()> {
    for (ns, spec) in saved.spec() {
        if reattach && netns::exists(&ns) {
            setup::ensure_ns(&ns, &spec).with_context(|| format!("reattaching {ns}"))?;
        } else {
            setup::create_ns(&ns, &spec)?;
        }
    }
    Ok(())
}

/// The lab's `policy_propagation_delay`: how long a modified endpoint policy takes to reach the
/// data plane (the guide: changes "can take a few minutes").
fn propagation_delay(world: &World) -> Duration {
    Duration::from_secs(world.policy_propagation_delay_secs)
}
