//! The one path for every change of a running lab:
//! validate (the model, before this is called) → persist → namespaces and devices → compile →
//! publish → wait for in-flight packets → reset moved flows → answer. A change of route tables'
//! routes only takes a shorter path: compile (the changed tables' FIBs) → publish → persist
//! (a journal record) → quiesce and reset if a lookup changed → answer.
//!
//! Invariants: changes are serialised by one lock; a change is answered only once it is durable
//! (world.json written to a temporary file, fsync'd, renamed, directory fsync'd; or a route
//! change's record appended to the journal and fdatasync'd, see [`super::journal`]), so a
//! `kill -9` at any point resumes to an acknowledged world; the data plane never sees a
//! half-applied change (one snapshot publish), and a route change whose persist fails is
//! unpublished (the last acknowledged routes are published again) before the call fails.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};

use super::journal::{self, Journal};
use super::setup::{self, NsSpec, RunRecord};
use crate::dataplane::Pipeline;
use crate::fib::{FIRST_SUBNET_PORT, Hop, PortId, Snapshot};
use crate::io::netns;
use crate::io::worker::{self, IoCounters, PortTable};
use crate::model::{RouteTable, Target, World};
use crate::services::access::Access;

/// What the state dir keeps of a lab: the world and the port of each subnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Saved {
    pub world: World,
    pub ports: BTreeMap<String, PortId>,
    /// The number of the last change this state includes; every change gets a new, higher one
    /// (one that failed too, so a number is never reused): orders world.json and the
    /// journal's records (see [`super::journal`]).
    #[serde(default)]
    pub seq: u64,
}

impl Saved {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("world.json")
    }

    /// world.json with the journal's records after it replayed.
    pub fn load(state_dir: &Path) -> anyhow::Result<Option<Saved>> {
        match std::fs::read(Self::path(state_dir)) {
            Ok(bytes) => {
                let path = Self::path(state_dir);
                let mut saved: Saved = serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", path.display()))?;
                // A world saved before deleted targets were kept has no `gone_targets`: its
                // routes to gateways and instances that went are adopted as blackholes, as
                // they were shown when it was saved, rather than refused.
                #[derive(Deserialize)]
                struct Probe {
                    world: ProbeWorld,
                }
                #[derive(Deserialize)]
                struct ProbeWorld {
                    gone_targets: Option<serde::de::IgnoredAny>,
                    #[serde(default)]
                    instances: Vec<ProbeInstance>,
                }
                #[derive(Deserialize)]
                struct ProbeInstance {
                    auto_public_ip: Option<serde::de::IgnoredAny>,
                }
                let probe = serde_json::from_slice::<Probe>(&bytes).ok();
                if probe.as_ref().is_some_and(|p| p.world.gone_targets.is_none()) {
                    saved.world.adopt_gone_targets();
                }
                // One saved before instances kept whether EC2 gave them their public IP: taken
                // from their addresses.
                if probe
                    .is_some_and(|p| p.world.instances.iter().any(|i| i.auto_public_ip.is_none()))
                {
                    saved.world.adopt_auto_public_ips();
                }
                // Valid JSON may still describe a world the model cannot hold (a reference that
                // does not resolve, a subnet outside its VPC, …): refused, as a syntax error is.
                saved.world.check().map_err(|e| anyhow!("{}: world.{e}", path.display()))?;
                if journal::replay(state_dir, &mut saved)? {
                    // Each record was checked as it was replayed; the whole world once more.
                    saved.world.check().map_err(|e| {
                        anyhow!(
                            "{} with {} replayed: world.{e}",
                            path.display(),
                            journal::Journal::path(state_dir).display()
                        )
                    })?;
                }
                Ok(Some(saved))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("reading the saved world"),
        }
    }

    /// Durable before it returns: temporary file, fsync, rename, fsync of the directory. The
    /// journal, whose records this holds, is removed.
    pub fn store(&self, state_dir: &Path) -> anyhow::Result<()> {
        let path = Self::path(state_dir);
        let tmp = path.with_extension("json.tmp");
        // The directory is made on the first store only (one syscall less per change).
        let mut f = match File::create(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(state_dir)?;
                File::create(&tmp)
            }
            r => r,
        }
        .with_context(|| format!("writing {}", tmp.display()))?;
        let written = (|| -> anyhow::Result<()> {
            // Compact, not pretty: this runs on every change (the in-process change path's p50
            // went from about 66 to 54 µs); `jq . world.json` shows it indented.
            f.write_all(&serde_json::to_vec(self)?)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            Ok(())
        })();
        if let Err(e) = written {
            // No half-written temporary file left behind (the last world.json is untouched).
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("writing {}", path.display())));
        }
        File::open(state_dir)?.sync_all()?;
        // Harmless if it stays: its records are at or before this seq, so loading skips them.
        if let Err(e) = journal::remove(state_dir) {
            tracing::warn!(error = %format!("{e:#}"), "the journal stays (its records are folded)");
        }
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

    /// [`Saved::snapshot`], updating the route tables' FIBs of `current` (the published
    /// snapshot) by their difference instead of building them afresh.
    pub fn snapshot_after(&self, generation: u64, current: &Snapshot) -> Snapshot {
        let port_of = |id: &str| self.ports.get(id).copied();
        Snapshot::compile_after(&self.world, generation, &port_of, Some(current))
    }
}

struct State {
    saved: Saved,
    generation: u64,
    record: RunRecord,
    journal: Journal,
    /// The highest [`Saved::seq`] given to a change, acknowledged or not.
    last_seq: u64,
}

/// A change would give a new subnet a namespace that exists already and is not the lab's.
#[derive(Debug, thiserror::Error)]
#[error(
    "the subnet's namespace {0} already exists and is not this lab's; remove it or give the subnet another Name tag"
)]
pub struct NamespaceTaken(pub String);

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
            state: Mutex::new(State {
                saved: saved.clone(),
                generation: 1,
                record,
                journal: Journal::default(),
                last_seq: saved.seq,
            }),
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

    /// A control plane without namespaces, devices or workers, for in-process measurements and
    /// tests: the world of a lab file with ports by position, persisted to `state_dir`, and the
    /// same change path as a running lab (changes that would add or remove namespaces fail).
    pub fn in_process(world: World, state_dir: PathBuf) -> anyhow::Result<Arc<Control>> {
        let ports = crate::fib::ports_by_index(&world).into_iter().collect();
        let saved = Saved { world, ports, seq: 0 };
        saved.store(&state_dir)?;
        let record = RunRecord {
            lab: saved.world.lab.clone(),
            pid: std::process::id(),
            started: setup::start_ticks(std::process::id()).unwrap_or(0),
            api: String::new(),
            state_dir: state_dir.clone(),
            namespaces: Vec::new(),
        };
        let access =
            Access::from_world(&saved.world, propagation_delay(&saved.world), None, Instant::now());
        Ok(Arc::new(Control {
            pipeline: Arc::new(Pipeline::new(saved.snapshot(1))),
            state: Mutex::new(State {
                last_seq: saved.seq,
                saved,
                generation: 1,
                record,
                journal: Journal::default(),
            }),
            access: Arc::new(arc_swap::ArcSwap::from_pointee(access)),
            ports: Arc::new(PortTable::from_pointee(Vec::new())),
            io: Arc::new(IoCounters::default()),
            state_dir,
        }))
    }

    /// The port of a subnet.
    pub fn port_of(&self, subnet_id: &str) -> Option<PortId> {
        self.lock().saved.ports.get(subnet_id).copied()
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
            match st.saved.store(&self.state_dir) {
                Ok(()) => st.journal.folded(),
                Err(e2) => tracing::error!(error = %e2, "restoring the saved world"),
            }
            return Err(e);
        }
        Ok(Ok(answer))
    }

    fn apply(&self, st: &mut State, world: World) -> anyhow::Result<Applied> {
        if let Some(tables) = route_only_change(&st.saved.world, &world) {
            return self.apply_routes(st, world, &tables);
        }
        let old_spec = st.saved.spec();
        st.last_seq += 1;
        let mut saved = Saved { world, ports: st.saved.ports.clone(), seq: st.last_seq };
        saved.assign_ports();
        let new_spec = saved.spec();
        // A new subnet's namespace must be the lab's own. One that exists already (another
        // lab's, such as `demo-x`'s `demo-x-aws` for a subnet named `x-aws` in lab `demo`, or
        // one made by hand) is refused before anything is stored or recorded: the run record
        // lists what `down` deletes.
        if let Some(ns) =
            new_spec.keys().find(|ns| !old_spec.contains_key(*ns) && netns::exists(ns))
        {
            return Err(NamespaceTaken(ns.clone()).into());
        }
        // Durable first: an acknowledged change must survive kill -9.
        saved.store(&self.state_dir)?;
        st.journal.folded();

        // Namespaces and devices: new subnets get theirs before the snapshot routes to them.
        let mut record = st.record.clone();
        let mut added: Vec<&String> = Vec::new();
        for (ns, spec) in &new_spec {
            match old_spec.get(ns) {
                None => {
                    record.namespaces.push((ns.clone(), spec.port));
                    record.save()?;
                    setup::create_ns(ns, spec)?;
                    self.attach(ns, spec.port)?;
                }
                Some(old) => {
                    added.push(ns);
                    if let Err(e) = setup::update_ns(ns, old, spec, setup::Half::Add) {
                        // Refused: the namespaces go back to what the running world has
                        // (nothing was removed yet).
                        for ns in added {
                            setup::undo_add(ns, &old_spec[ns], &new_spec[ns]);
                        }
                        return Err(e);
                    }
                }
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
        let current = self.pipeline.snapshot();
        let snapshot = saved.snapshot_after(generation, &current);
        drop(current);
        self.pipeline.publish(snapshot);
        let resets = self.reset_moved_flows();
        // Addresses a namespace loses go after the resets were written: an RST to the remote
        // side of a moved flow is addressed to one of them.
        // The change is published by now: a failure here leaves an address behind (logged),
        // not a half-applied change.
        for (ns, spec) in &new_spec {
            if let Some(old) = old_spec.get(ns)
                && let Err(e) = setup::update_ns(ns, old, spec, setup::Half::Remove)
            {
                tracing::warn!(ns, error = %format!("{e:#}"), "removing addresses");
            }
        }
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
        tracing::info!(generation, resets, "change applied");
        Ok(Applied { generation, resets })
    }
}

impl Control {
    /// After a publish: waits for packets still in flight on the snapshot before it, then
    /// resets the tracked flows whose path changed and writes their RSTs. Returns how many
    /// flows were reset.
    fn reset_moved_flows(&self) -> usize {
        worker::quiesce(&self.ports);
        let resets = self.pipeline.reset_moved_flows();
        worker::inject(&self.ports, &resets, &self.io);
        resets.len()
    }

    /// Makes a route-only change durable: a journal record, or a rewrite of world.json when the
    /// journal is full or an append failed.
    fn persist_routes(
        &self,
        st: &mut State,
        saved: &Saved,
        tables: &[String],
    ) -> anyhow::Result<()> {
        match st.journal.append(&self.state_dir, saved, tables) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "rewriting world.json instead"),
        }
        saved.store(&self.state_dir)?;
        st.journal.folded();
        Ok(())
    }

    /// The one path for a change of route tables' routes only (CreateRoute, DeleteRoute,
    /// ReplaceRoute, …): the same steps and guarantees as [`Control::apply`], without the work
    /// such a change cannot need. Namespaces, devices, ports and the services' access state do
    /// not depend on routes, so they are left as they are. The snapshot is the current one with
    /// the changed tables' FIBs updated in a copy-on-write clone (every other FIB is shared with
    /// the current snapshot), or a full compile when [`recompile_tables`] cannot (NATs, unknown
    /// endpoints). Published as a whole, then persisted, then quiesce and the reset of moved
    /// flows as for any change.
    ///
    /// Persisted as a journal record ([`super::journal`]: one append and `fdatasync` instead of
    /// rewriting world.json), and published before that: the data plane need not wait for the
    /// disk (in process, change start to a reader seeing the route went from p50 49–56 µs to
    /// about 12–15 µs on tmpfs, and from about 600 µs to 23 µs with the state dir on this VM's
    /// disk). The call is still answered only after the persist, so an acknowledged change
    /// survives kill -9; a crash in between loses a change nobody was told had happened, as a
    /// lost connection would. When the persist fails, the last acknowledged world's routes are
    /// published again (the next generation), flows the change moved are reset again, and the
    /// call fails.
    fn apply_routes(
        &self,
        st: &mut State,
        world: World,
        tables: &[String],
    ) -> anyhow::Result<Applied> {
        st.last_seq += 1;
        let saved = Saved { world, ports: st.saved.ports.clone(), seq: st.last_seq };
        let generation = st.generation + 1;
        let current = self.pipeline.snapshot();
        let (snapshot, moved) = match recompile_tables(&current, &saved, tables, generation) {
            Some((snapshot, moved)) => (snapshot, Some(moved)),
            None => (saved.snapshot_after(generation, &current), None),
        };
        drop(current);
        self.pipeline.publish(snapshot);
        // Whether any lookup answers otherwise now: only the reset needs to know, so it is
        // worked out after the publish, off the path to a reader seeing the change.
        let same_lookups = moved.is_some_and(|m| m.iter().all(RouteDiff::same_lookups));
        if let Err(e) = self.persist_routes(st, &saved, tables) {
            // Not acknowledged: back to the last acknowledged world's routes.
            let generation = generation + 1;
            let current = self.pipeline.snapshot();
            let back = st.saved.snapshot_after(generation, &current);
            drop(current);
            self.pipeline.publish(back);
            st.generation = generation;
            if !same_lookups {
                self.reset_moved_flows();
            }
            return Err(e);
        }
        // When every lookup gives the hop it gave before (a more specific route to the hop its
        // cover already had, say), no flow, tracked or in flight on the old snapshot, can have
        // moved: nothing to wait for, nothing to scan (no flow-table lock taken).
        let resets = if same_lookups { 0 } else { self.reset_moved_flows() };
        st.saved = saved;
        st.generation = generation;
        tracing::info!(generation, resets, "change applied");
        Ok(Applied { generation, resets })
    }
}

/// The route tables whose routes a change touched, when it touched nothing else (the same
/// tables, in the same order, with the same ids and VPCs; every other part of the world equal);
/// `None` for any other change.
fn route_only_change(old: &World, new: &World) -> Option<Vec<String>> {
    // Destructured so that a new field of `World` cannot be forgotten here.
    let World {
        lab,
        region,
        prefix_lists,
        vpcs,
        internet_gateways,
        route_tables,
        subnets,
        endpoints,
        instances,
        buckets,
        internet_hosts,
        users,
        policy_propagation_delay_secs,
        next_id,
        next_rule_id,
        tags,
        security_groups,
        network_acls,
        elastic_ips,
        nat_gateways,
        terminated_instances,
        client_tokens,
        gone_targets,
    } = new;
    let rest_equal = *lab == old.lab
        && *region == old.region
        && *prefix_lists == old.prefix_lists
        && *vpcs == old.vpcs
        && *internet_gateways == old.internet_gateways
        && *subnets == old.subnets
        && *endpoints == old.endpoints
        && *instances == old.instances
        && *buckets == old.buckets
        && *internet_hosts == old.internet_hosts
        && *users == old.users
        && *policy_propagation_delay_secs == old.policy_propagation_delay_secs
        && *next_id == old.next_id
        && *next_rule_id == old.next_rule_id
        && *tags == old.tags
        && *security_groups == old.security_groups
        && *network_acls == old.network_acls
        && *elastic_ips == old.elastic_ips
        && *nat_gateways == old.nat_gateways
        && *terminated_instances == old.terminated_instances
        && *client_tokens == old.client_tokens
        && *gone_targets == old.gone_targets;
    if !rest_equal || route_tables.len() != old.route_tables.len() {
        return None;
    }
    let mut changed = Vec::new();
    for (o, n) in old.route_tables.iter().zip(route_tables) {
        let RouteTable { id, vpc, routes } = n;
        if *id != o.id || *vpc != o.vpc {
            return None;
        }
        if *routes != o.routes {
            changed.push(id.clone());
        }
    }
    Some(changed)
}

/// `current` (the published snapshot) with the FIBs of the subnets using `tables` updated to
/// `saved.world`, which differs from the world `current` was compiled from only in those
/// tables' routes: each table's FIB goes to its next version with the prefixes whose hop
/// changed (the difference against the routes the plane records it was compiled from), and
/// every other table's FIB is shared. `None` when the full compile is needed: a changed table
/// names (before or after) a NAT gateway or NAT instance, whose index the full compile assigns,
/// or an endpoint `current` does not have. A removed route of a table with extra routes
/// uncovers the extra route of the same prefix. The route → hop mapping is
/// [`Snapshot::compile`]'s, on the same `compiled_routes`.
fn recompile_tables(
    current: &Snapshot,
    saved: &Saved,
    tables: &[String],
    generation: u64,
) -> Option<(Snapshot, Vec<RouteDiff>)> {
    let world = &saved.world;
    let mut diffs = Vec::with_capacity(tables.len());
    let mut snapshot = current.clone();
    snapshot.generation = generation;
    // Compile's route → hop mapping; `None` for what only the full compile can index.
    let endpoint = |id: &str| current.endpoints.iter().position(|e| *e.vpce_id == *id);
    let hops = |routes: Vec<(ipnet::Ipv4Net, Target)>| -> Option<HashMap<ipnet::Ipv4Net, Hop>> {
        let mut out = HashMap::with_capacity(routes.len());
        for (net, target) in routes {
            let hop = Hop::of_direct(&target, |id| endpoint(id).map(|i| i as u16))?;
            // Later wins, as in the full compile.
            out.insert(net.trunc(), hop);
        }
        Some(out)
    };
    for table in tables {
        // A table with extra routes (`vpcsim up --extra-routes`) has its own routes on top of
        // them (as the full compile puts them): a removed own route uncovers the extra route of
        // the same prefix, and covers are looked up in both. A route-only change does not
        // change what the extra routes point to (their gateway's attachment is not a route).
        let using: Vec<PortId> = world
            .subnets
            .iter()
            .filter(|s| s.route_table == *table)
            .filter_map(|s| saved.ports.get(&s.id).copied())
            .collect();
        // No subnet uses the table: no lookup can change.
        let Some(plane) = using.iter().find_map(|p| current.subnet(*p)) else {
            continue;
        };
        // The routes the current FIB was compiled from; a NAT among them is the full
        // compile's to index.
        let before = &*plane.own;
        if before.values().any(|h| matches!(h, Hop::Nat(_))) {
            return None;
        }
        let extra = crate::fib::extra::base(world, table);
        let after = hops(world.compiled_routes(table))?;
        // Every subnet of the table shares one FIB: its next version (the current snapshot's
        // stays as it is; see `fib::table`) goes to all of them. `None`: the current snapshot's
        // FIB is not its table's latest version, so the full compile builds it afresh.
        let fib = plane.fib.update(crate::fib::route_changes(before, &after, extra.as_ref()))?;
        let own = Arc::new(after);
        diffs.push(RouteDiff { before: plane.own.clone(), after: own.clone(), extra });
        for port in using {
            if let Some(Some(plane)) = snapshot.subnets.get_mut(usize::from(port)) {
                plane.fib = fib.clone();
                plane.own = own.clone();
            }
        }
    }
    Some((snapshot, diffs))
}

/// One table's routes (prefix → hop) before and after a route-only change.
struct RouteDiff {
    before: Arc<HashMap<ipnet::Ipv4Net, Hop>>,
    after: Arc<HashMap<ipnet::Ipv4Net, Hop>>,
    extra: Option<crate::fib::extra::Extra>,
}

impl RouteDiff {
    fn same_lookups(&self) -> bool {
        same_lookups_after(&self.before, &self.after, self.extra.as_ref())
    }
}

/// Whether a table whose routes (prefix → hop, later wins) were `before` answers every lookup
/// as before with `after`. The prefixes containing an address form a chain, so for an address
/// whose longest matching prefix L (in either version) is unchanged the answer is unchanged, and
/// otherwise L is a changed prefix and the answer is the hop of L's longest cover (L itself or
/// the longest prefix containing it) in each version. So: every changed prefix has the same
/// cover hop (or none) before and after.
fn same_lookups_after(
    before: &HashMap<ipnet::Ipv4Net, Hop>,
    after: &HashMap<ipnet::Ipv4Net, Hop>,
    extra: Option<&crate::fib::extra::Extra>,
) -> bool {
    // The longest of `routes` covering `net` (`net` included), with its length.
    let longest = |routes: &HashMap<ipnet::Ipv4Net, Hop>, net: ipnet::Ipv4Net| {
        (0..=net.prefix_len()).rev().find_map(|len| {
            let sup = ipnet::Ipv4Net::new(net.network(), len).ok()?.trunc();
            routes.get(&sup).map(|&h| (len, h))
        })
    };
    let mut changed = before
        .iter()
        .filter(|(n, h)| after.get(n) != Some(h))
        .map(|(n, _)| *n)
        .chain(after.iter().filter(|(n, h)| before.get(n) != Some(h)).map(|(n, _)| *n));
    changed.all(|net| {
        // The extra routes are the same before and after: their cover is looked up once.
        // The table's own route of a prefix wins over an extra route of the same prefix.
        let extra = extra.and_then(|e| e.longest_cover(net));
        let cover = |routes: &HashMap<ipnet::Ipv4Net, Hop>| match (longest(routes, net), extra) {
            (Some((l, h)), Some((m, _))) if l >= m => Some(h),
            (_, Some((_, h))) => Some(h),
            (own, None) => own.map(|(_, h)| h),
        };
        cover(before) == cover(after)
    })
}

/// Brings up the namespaces of `saved`: created fresh, or (after a crash) taken over as they
/// are and completed, those of the crashed run's record only (`adopt`).
pub fn build_namespaces(
    saved: &Saved,
    adopt: &std::collections::HashSet<String>,
) -> anyhow::Result<()> {
    for (ns, spec) in saved.spec() {
        if adopt.contains(&ns) && netns::exists(&ns) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Route;
    use ipnet::Ipv4Net;
    use std::net::Ipv4Addr;

    fn lab(name: &str) -> (Arc<Control>, PathBuf) {
        let world = crate::lab::file::parse("demo", crate::lab::file::DEFAULT_LAB).unwrap();
        let dir =
            std::env::temp_dir().join(format!("vpcsim-control-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Control::in_process(world, dir.clone()).unwrap(), dir)
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    /// Every subnet's route to a set of probe addresses (the changed prefixes, their edges, the
    /// prefix lists, the internet), NATs and endpoints: the published snapshot against a full
    /// compile of the saved world.
    fn assert_same_as_full_compile(c: &Control) {
        let st = c.lock();
        let full = st.saved.snapshot(st.generation);
        let published = c.pipeline.snapshot();
        assert_eq!(published.generation, st.generation);
        let mut probes: Vec<u32> =
            vec![0, 0x0808_0808, 0x0808_0809, 0x367b_aa05, 0xffff_ffff, 0x0a00_0105, 0x0a00_0405];
        for i in 0..64u32 {
            probes.extend([0x6440_0000 | i, 0x6440_0000 | i << 8, 0x6440_0000 | i << 8 | 1]);
        }
        for pl in &st.saved.world.prefix_lists {
            for cidr in &pl.cidrs {
                probes.extend([u32::from(cidr.network()), u32::from(cidr.broadcast())]);
            }
        }
        for t in &st.saved.world.route_tables {
            for r in &t.routes {
                let n = r.destination;
                probes.extend([u32::from(n.network()), u32::from(n.broadcast())]);
                probes.extend([u32::from(n.network()).wrapping_sub(1)]);
                probes.extend([u32::from(n.broadcast()).wrapping_add(1)]);
            }
        }
        assert_eq!(published.subnets.len(), full.subnets.len());
        for port in 0..full.subnets.len() as PortId {
            for &p in &probes {
                assert_eq!(
                    published.route(port, Ipv4Addr::from(p)),
                    full.route(port, Ipv4Addr::from(p)),
                    "port {port}, {}",
                    Ipv4Addr::from(p)
                );
            }
        }
        assert_eq!(published.nats, full.nats);
        assert_eq!(published.nat_addrs, full.nat_addrs);
        assert_eq!(published.endpoints, full.endpoints);
    }

    fn change(c: &Control, f: impl FnOnce(&mut World) -> Result<(), crate::model::ModelError>) {
        c.change(|w| {
            let mut w = w.clone();
            f(&mut w)?;
            Ok::<_, crate::model::ModelError>((Some(w), ()))
        })
        .unwrap()
        .unwrap();
        assert_same_as_full_compile(c);
    }

    /// A route change whose persist fails is not acknowledged and leaves nothing behind: the
    /// data plane routes as before it (it was published before the persist), the saved world
    /// is the last acknowledged one, and the next change works once the disk does.
    #[test]
    fn failed_persist_of_a_route_change_is_undone() {
        let (c, dir) = lab("persist-fails");
        let route = || Route {
            destination: net("100.64.9.9/32"),
            target: Target::Igw("igw-1a2b3c4d".into()),
        };
        let subnet =
            c.world().subnets.iter().find(|s| s.route_table == "rtb-0c0c0c0c").unwrap().id.clone();
        let port = c.port_of(&subnet).unwrap();
        let probe = Ipv4Addr::new(100, 64, 9, 9);
        let before = c.pipeline.snapshot().route(port, probe);
        assert_ne!(
            before,
            Some(crate::fib::Hop::Igw),
            "c's table must not send the probe to the igw"
        );
        let world_before = c.world();
        // The state directory becomes a file: the persist (world.json.tmp in it) fails.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, b"not a directory").unwrap();
        let r = c.change(|w| {
            let mut w = w.clone();
            w.add_route("rtb-0c0c0c0c", route())?;
            Ok::<_, crate::model::ModelError>((Some(w), ()))
        });
        assert!(r.is_err(), "the change must fail when it cannot be persisted");
        assert_eq!(c.pipeline.snapshot().route(port, probe), before);
        assert_eq!(c.world(), world_before);
        assert_same_as_full_compile(&c);
        // The disk works again: the same change goes through and is persisted.
        std::fs::remove_file(&dir).unwrap();
        change(&c, |w| w.add_route("rtb-0c0c0c0c", route()));
        assert_eq!(c.pipeline.snapshot().route(port, probe), Some(crate::fib::Hop::Igw));
        assert_eq!(Saved::load(&dir).unwrap().expect("persisted").world, c.world());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn add_route(c: &Control, table: &str, dest: &str) {
        let r = Route { destination: net(dest), target: Target::Igw("igw-1a2b3c4d".into()) };
        change(c, |w| w.add_route(table, r));
    }

    fn journal_lines(dir: &Path) -> usize {
        std::fs::read(journal::Journal::path(dir))
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
    }

    /// Route changes are durable as journal records (world.json is not rewritten); loading
    /// replays them; any other change rewrites world.json and removes the journal.
    #[test]
    fn route_changes_are_journaled_and_folded() {
        let (c, dir) = lab("journal");
        let world_json = std::fs::read(Saved::path(&dir)).unwrap();
        for i in 0..10 {
            add_route(&c, "rtb-0c0c0c0c", &format!("100.64.{i}.0/24"));
        }
        change(&c, |w| w.delete_route("rtb-0c0c0c0c", net("100.64.3.0/24")));
        add_route(&c, "rtb-0a0a0a0a", "100.65.0.0/16");
        assert_eq!(std::fs::read(Saved::path(&dir)).unwrap(), world_json, "world.json rewritten");
        assert_eq!(journal_lines(&dir), 12);
        let loaded = Saved::load(&dir).unwrap().unwrap();
        assert_eq!(loaded.world, c.world());
        assert_eq!(loaded.seq, 12);
        // Not a route-only change: world.json holds everything, the journal is gone.
        change(&c, |w| {
            w.tags.entry("rtb-0c0c0c0c".into()).or_default().insert("Name".into(), "c".into());
            Ok(())
        });
        assert!(!journal::Journal::path(&dir).exists());
        let on_disk: Saved =
            serde_json::from_slice(&std::fs::read(Saved::path(&dir)).unwrap()).unwrap();
        assert_eq!((on_disk.world, on_disk.seq), (c.world(), 13));
        // The next route change starts a new journal.
        add_route(&c, "rtb-0c0c0c0c", "100.66.0.0/16");
        assert_eq!(journal_lines(&dir), 1);
        assert_eq!(Saved::load(&dir).unwrap().unwrap().world, c.world());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What a crash can leave: an unfinished last line (ignored), records already in
    /// world.json (skipped); anything else wrong is an error that names the line.
    #[test]
    fn journal_recovery() {
        let (c, dir) = lab("journal-recovery");
        let path = journal::Journal::path(&dir);
        add_route(&c, "rtb-0c0c0c0c", "100.64.1.0/24");
        add_route(&c, "rtb-0c0c0c0c", "100.64.2.0/24");
        let two = std::fs::read(&path).unwrap();
        // A crash in the middle of an append.
        let mut torn = two.clone();
        torn.extend_from_slice(b"{\"seq\":3,\"route_tables\":[{\"id\":\"rtb-0c");
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(Saved::load(&dir).unwrap().unwrap().world, c.world());
        std::fs::write(&path, &two).unwrap();
        // A crash after world.json was rewritten, before the journal was removed: its
        // records are in world.json and are skipped, also before newer ones.
        change(&c, |w| {
            w.tags.entry("rtb-0c0c0c0c".into()).or_default().insert("Name".into(), "c".into());
            Ok(())
        });
        add_route(&c, "rtb-0c0c0c0c", "100.64.4.0/24");
        let newer = std::fs::read(&path).unwrap();
        std::fs::write(&path, [two.clone(), newer].concat()).unwrap();
        assert_eq!(Saved::load(&dir).unwrap().unwrap().world, c.world());
        // A damaged line in the middle, records out of order, a table world.json lacks.
        let lines: Vec<&[u8]> = two.split_inclusive(|&b| b == b'\n').collect();
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let bad = [
            [b"{\"seq\": oops}\n".as_slice(), lines[1]].concat(),
            text(lines[1]).replace("\"seq\":2", "\"seq\":20").into_bytes(),
        ];
        std::fs::write(&path, &bad[0]).unwrap();
        let e = format!("{:#}", Saved::load(&dir).unwrap_err());
        assert!(e.contains("journal.jsonl line 1: not a journal record"), "{e}");
        let out_of_order =
            [bad[1].clone(), text(lines[1]).replace("\"seq\":2", "\"seq\":19").into_bytes()]
                .concat();
        std::fs::write(&path, out_of_order).unwrap();
        let e = format!("{:#}", Saved::load(&dir).unwrap_err());
        assert!(e.contains("line 2: record 19 follows record 20: out of order"), "{e}");
        std::fs::write(&path, text(&bad[1]).replace("rtb-0c0c0c0c", "rtb-0e0e0e0e")).unwrap();
        let e = format!("{:#}", Saved::load(&dir).unwrap_err());
        assert!(e.contains("line 1: route table rtb-0e0e0e0e"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The reviewer's three: valid JSON describing a world the model cannot hold is refused
    /// with the file, the field and the rule (as a syntax error is), and nothing is rewritten.
    #[test]
    fn a_saved_world_that_breaks_the_models_rules_is_refused() {
        let (c, dir) = lab("corrupt");
        add_route(&c, "rtb-0c0c0c0c", "100.127.3.0/24");
        let path = journal::Journal::path(&dir);
        let record = std::fs::read_to_string(&path).unwrap();
        let world_json = std::fs::read(Saved::path(&dir)).unwrap();
        let load_err = || format!("{:#}", Saved::load(&dir).unwrap_err());
        // A journal record rewritten to target a gateway that does not exist.
        std::fs::write(&path, record.replace("igw-1a2b3c4d", "igw-deadbeef")).unwrap();
        let e = load_err();
        assert!(
            e.contains("journal.jsonl line 1: route_tables[0].routes[0].target (rtb-0c0c0c0c): the gateway ID 'igw-deadbeef' does not exist"),
            "{e}"
        );
        // A record's route inside the VPC (CreateRoute refuses it).
        std::fs::write(&path, record.replace("100.127.3.0/24", "10.0.7.0/24")).unwrap();
        let e = load_err();
        assert!(e.contains("line 1: route_tables[0].routes[1].destination (rtb-0c0c0c0c)"), "{e}");
        // A record with one destination twice.
        let twice =
            record.replace("]}]}", r#",{"destination":"100.127.3.0/24","target":"Blackhole"}]}]}"#);
        std::fs::write(&path, twice).unwrap();
        let e = load_err();
        assert!(e.contains("line 1: route_tables[0].routes[2].destination (rtb-0c0c0c0c): the route identified by 100.127.3.0/24 already exists"), "{e}");
        std::fs::write(&path, &record).unwrap();
        assert_eq!(Saved::load(&dir).unwrap().unwrap().world, c.world());
        // world.json: subnet a outside its VPC, then using a table that does not exist.
        let corrupt = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_slice(&world_json).unwrap();
            f(&mut v);
            std::fs::write(Saved::path(&dir), serde_json::to_vec(&v).unwrap()).unwrap();
        };
        corrupt(&|v| v["world"]["subnets"][0]["cidr"] = "192.168.1.0/24".into());
        let e = load_err();
        assert!(e.contains("world.json: world.subnets[0].cidr (subnet-0a0a0a0a): the CIDR '192.168.1.0/24' is invalid for a subnet of a VPC with CIDR 10.0.0.0/16"), "{e}");
        corrupt(&|v| v["world"]["subnets"][0]["route_table"] = "rtb-deadbeef".into());
        let e = load_err();
        assert!(e.contains("world.json: world.subnets[0].route_table (subnet-0a0a0a0a): the routeTable ID 'rtb-deadbeef' does not exist"), "{e}");
        // A route to a gateway the world does not have: refused in a world that keeps the ids
        // of gone targets; in one saved before they were kept (no `gone_targets` field) the
        // gateway went while the route named it, and the route loads as the blackhole it was.
        let to_deadbeef = |v: &mut serde_json::Value| {
            v["world"]["route_tables"][1]["routes"][0]["target"]["Igw"] = "igw-deadbeef".into();
        };
        corrupt(&|v| to_deadbeef(v));
        let e = load_err();
        assert!(e.contains("the gateway ID 'igw-deadbeef' does not exist"), "{e}");
        corrupt(&|v| {
            to_deadbeef(v);
            v["world"].as_object_mut().unwrap().remove("gone_targets");
        });
        let legacy = Saved::load(&dir).unwrap().unwrap().world;
        assert!(legacy.gone_targets.contains("igw-deadbeef"), "{:?}", legacy.gone_targets);
        // Loading changed nothing on disk.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), record);
        std::fs::write(Saved::path(&dir), &world_json).unwrap();
        assert_eq!(Saved::load(&dir).unwrap().unwrap().world, c.world());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A world saved before instances kept `auto_public_ip` loads: a public IP that is no
    /// Elastic IP's was EC2's; an instance holding an Elastic IP is taken to have had none. A
    /// world saved since keeps the field, and one contradicting its public IP is refused.
    #[test]
    fn a_world_saved_before_auto_public_ips_loads() {
        let (c, dir) = lab("auto-public-ip");
        change(&c, |w| {
            w.allocate_address("eipalloc-0a1b2c3d", None)?;
            w.associate_address("eipalloc-0a1b2c3d", "i-0a0a0a0a", false).map(|_| ())
        });
        assert!(c.world().instance("i-0a0a0a0a").unwrap().auto_public_ip);
        let saved = std::fs::read(Saved::path(&dir)).unwrap();
        let rewrite = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_slice(&saved).unwrap();
            f(&mut v);
            std::fs::write(Saved::path(&dir), serde_json::to_vec(&v).unwrap()).unwrap();
        };
        rewrite(&|v| {
            for i in v["world"]["instances"].as_array_mut().unwrap() {
                i.as_object_mut().unwrap().remove("auto_public_ip").expect("always written");
            }
        });
        let w = Saved::load(&dir).unwrap().unwrap().world;
        let auto: Vec<(&str, bool)> =
            w.instances.iter().map(|i| (i.id.as_str(), i.auto_public_ip)).collect();
        assert_eq!(
            auto,
            [
                ("i-0a0a0a0a", false),
                ("i-0b0b0b0b", true),
                ("i-0c0c0c0c", true),
                ("i-0d0d0d0d", false)
            ]
        );
        rewrite(&|v| v["world"]["instances"][1]["auto_public_ip"] = false.into());
        let e = format!("{:#}", Saved::load(&dir).unwrap_err());
        assert!(
            e.contains("world.instances[1].auto_public_ip (i-0b0b0b0b): instance i-0b0b0b0b has public IP 203.0.113.20, which is no Elastic IP's, but EC2 assigned it none"),
            "{e}"
        );
        std::fs::write(Saved::path(&dir), &saved).unwrap();
        assert_eq!(Saved::load(&dir).unwrap().unwrap().world, c.world());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store that fails leaves world.json as it was and no temporary file.
    #[test]
    fn a_failed_store_leaves_no_temporary_file() {
        let (c, dir) = lab("store-fails");
        // world.json.tmp cannot be renamed over a directory that is not empty.
        let saved = Saved { world: c.world(), ports: BTreeMap::new(), seq: 1 };
        let blocked = dir.join("blocked");
        std::fs::create_dir_all(Saved::path(&blocked).join("x")).unwrap();
        let e = format!("{:#}", saved.store(&blocked).unwrap_err());
        assert!(e.contains("world.json"), "{e}");
        let left: Vec<_> =
            std::fs::read_dir(&blocked).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["world.json"], "no world.json.tmp");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The journal is folded into world.json after `MAX_RECORDS` records (a route added and
    /// deleted again, so the records stay small and the size limit is not what folds it).
    #[test]
    fn a_full_journal_is_folded() {
        let (c, dir) = lab("journal-full");
        for i in 0..journal::MAX_RECORDS + 3 {
            let r = Route {
                destination: net("100.64.0.0/24"),
                target: Target::Igw("igw-1a2b3c4d".into()),
            };
            c.change(|w| {
                let mut w = w.clone();
                if i % 2 == 0 {
                    w.add_route("rtb-0c0c0c0c", r)?;
                } else {
                    w.delete_route("rtb-0c0c0c0c", r.destination)?;
                }
                Ok::<_, crate::model::ModelError>((Some(w), ()))
            })
            .unwrap()
            .unwrap();
        }
        assert_eq!(journal_lines(&dir), 2);
        let on_disk: Saved =
            serde_json::from_slice(&std::fs::read(Saved::path(&dir)).unwrap()).unwrap();
        assert_eq!(on_disk.seq, journal::MAX_RECORDS as u64 + 1);
        assert_eq!(Saved::load(&dir).unwrap().unwrap().world, c.world());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn route_only_changes_match_a_full_compile() {
        let (c, dir) = lab("routes");
        let igw = || Target::Igw("igw-1a2b3c4d".into());
        let nat = || Target::Nat("nat-0b0b0b0b".into());
        let route = |d: &str, target| Route { destination: net(d), target };
        // Adds and deletes in a's table (the benchmark's churn), shorter prefixes too.
        for i in 0..20 {
            let d = format!("100.64.{i}.7/32");
            change(&c, |w| w.add_route("rtb-0a0a0a0a", route(&d, igw())));
        }
        change(&c, |w| w.add_route("rtb-0a0a0a0a", route("100.64.0.0/10", igw())));
        change(&c, |w| w.add_route("rtb-0c0c0c0c", route("100.64.0.0/16", igw())));
        change(&c, |w| w.add_route("rtb-0c0c0c0c", route("100.0.0.0/6", igw())));
        for i in (0..20).step_by(3) {
            let d = format!("100.64.{i}.7/32");
            change(&c, |w| w.delete_route("rtb-0a0a0a0a", net(&d)));
        }
        change(&c, |w| w.delete_route("rtb-0c0c0c0c", net("100.64.0.0/16")));
        // Through a NAT (the full compile), then back.
        change(&c, |w| w.add_route("rtb-0c0c0c0c", route("100.65.0.0/16", nat())));
        change(&c, |w| w.replace_route("rtb-0c0c0c0c", route("100.65.0.0/16", igw())));
        change(&c, |w| w.delete_route("rtb-0c0c0c0c", net("100.65.0.0/16")));
        change(&c, |w| w.replace_route("rtb-0d0d0d0d", route("0.0.0.0/0", igw())));
        change(&c, |w| w.replace_route("rtb-0d0d0d0d", route("0.0.0.0/0", nat())));
        // Over the prefix list's CIDRs (the endpoint route) and the default route.
        change(&c, |w| w.add_route("rtb-0a0a0a0a", route("52.216.0.0/15", igw())));
        change(&c, |w| w.delete_route("rtb-0a0a0a0a", net("52.216.0.0/15")));
        change(&c, |w| w.delete_route("rtb-0b0b0b0b", net("0.0.0.0/0")));
        change(&c, |w| w.add_route("rtb-0b0b0b0b", route("0.0.0.0/0", igw())));
        // A route-only change persists like any other.
        let saved = Saved::load(&dir).unwrap().unwrap();
        assert_eq!(saved.world, c.world());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Route-only changes in a table with extra routes: own routes on top of them, a deleted
    /// own route uncovering the extra route of the same prefix.
    #[test]
    fn route_only_changes_with_extra_routes_match_a_full_compile() {
        use crate::fib::extra::{TEST_TABLE, install_for_tests};
        install_for_tests();
        let text = crate::lab::file::DEFAULT_LAB.replace("rtb-0a0a0a0a", TEST_TABLE);
        let world = crate::lab::file::parse("demo", &text).unwrap();
        let dir = std::env::temp_dir().join(format!("vpcsim-control-extra-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = Control::in_process(world, dir.clone()).unwrap();
        let igw = || Target::Igw("igw-1a2b3c4d".into());
        let route = |d: &str, target| Route { destination: net(d), target };
        let a = |c: &Control, ip: &str| {
            let port = c.port_of(&c.world().subnets[0].id).unwrap();
            c.pipeline.snapshot().route(port, ip.parse().unwrap())
        };
        assert_eq!(a(&c, "8.8.8.8"), Some(Hop::Blackhole), "the extra /24");
        // The same prefix as an extra route: the own route wins, and deleting it uncovers the
        // extra route again.
        change(&c, |w| w.add_route(TEST_TABLE, route("8.8.8.0/24", igw())));
        assert_eq!(a(&c, "8.8.8.8"), Some(Hop::Igw));
        change(&c, |w| w.delete_route(TEST_TABLE, net("8.8.8.0/24")));
        assert_eq!(a(&c, "8.8.8.8"), Some(Hop::Blackhole));
        // Inside an extra route, and over one.
        change(&c, |w| w.add_route(TEST_TABLE, route("8.8.8.8/32", igw())));
        change(&c, |w| w.add_route(TEST_TABLE, route("8.0.0.0/8", igw())));
        assert_eq!(a(&c, "8.8.8.8"), Some(Hop::Igw));
        assert_eq!(a(&c, "8.8.8.9"), Some(Hop::Blackhole));
        change(&c, |w| w.delete_route(TEST_TABLE, net("8.8.8.8/32")));
        change(&c, |w| w.delete_route(TEST_TABLE, net("8.0.0.0/8")));
        // The benchmark's churn.
        for i in 0..5 {
            let d = format!("100.64.{i}.7/32");
            change(&c, |w| w.add_route(TEST_TABLE, route(&d, igw())));
            change(&c, |w| w.delete_route(TEST_TABLE, net(&d)));
        }
        // Other changes take the full compile, which updates each table's FIB by the
        // difference in its routes (the endpoint's prefix-list route going and coming back).
        use crate::model::PolicyChange;
        let ep = "vpce-11bb22cc";
        let generation = c.pipeline.snapshot().generation;
        change(&c, |w| w.modify_endpoint(ep, &[], &[TEST_TABLE.into()], PolicyChange::Keep));
        assert_eq!(c.pipeline.snapshot().generation, generation + 1);
        assert_eq!(a(&c, "54.123.171.5"), Some(Hop::Igw), "the default route");
        assert_eq!(a(&c, "54.123.170.5"), Some(Hop::Blackhole), "the extra /24");
        change(&c, |w| w.modify_endpoint(ep, &[TEST_TABLE.into()], &[], PolicyChange::Keep));
        assert!(matches!(a(&c, "54.123.171.5"), Some(Hop::Vpce(_))));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn same_lookups_only_when_no_address_changes_hop() {
        use crate::fib::table::Fib;
        let map = |routes: &[(&str, Hop)]| -> HashMap<Ipv4Net, Hop> {
            routes.iter().map(|(n, h)| (net(n), *h)).collect()
        };
        let default = [("0.0.0.0/0", Hop::Igw), ("10.0.0.0/16", Hop::Local)];
        type Routes<'a> = Vec<(&'a str, Hop)>;
        let cases: Vec<(Routes, Routes, bool)> = vec![
            // The benchmark's churn: a /32 to the hop its cover already has.
            (default.to_vec(), [&default[..], &[("100.64.1.2/32", Hop::Igw)]].concat(), true),
            ([&default[..], &[("100.64.1.2/32", Hop::Igw)]].concat(), default.to_vec(), true),
            // A different hop, a route where there was none, a removed cover.
            (
                default.to_vec(),
                [&default[..], &[("100.64.1.2/32", Hop::Blackhole)]].concat(),
                false,
            ),
            (
                vec![("10.0.0.0/16", Hop::Local)],
                vec![("10.0.0.0/16", Hop::Local), ("100.64.0.0/16", Hop::Igw)],
                false,
            ),
            (default.to_vec(), vec![("10.0.0.0/16", Hop::Local)], false),
            // Same hop as the cover, but over a more specific route with another hop.
            (
                [&default[..], &[("100.64.1.0/24", Hop::Blackhole)]].concat(),
                [&default[..], &[("100.64.1.0/24", Hop::Blackhole), ("100.64.0.0/16", Hop::Igw)]]
                    .concat(),
                true,
            ),
            (
                [&default[..], &[("100.64.1.0/24", Hop::Blackhole)]].concat(),
                [&default[..], &[("100.64.1.0/24", Hop::Blackhole), ("100.64.1.0/25", Hop::Igw)]]
                    .concat(),
                false,
            ),
            // A replaced default route.
            (
                default.to_vec(),
                vec![("0.0.0.0/0", Hop::Blackhole), ("10.0.0.0/16", Hop::Local)],
                false,
            ),
        ];
        for (b, a, want) in cases {
            let (before, after) = (map(&b), map(&a));
            assert_eq!(same_lookups_after(&before, &after, None), want, "{b:?} -> {a:?}");
            if want {
                let (lb, la) = (Fib::from_routes(before.clone()), Fib::from_routes(after.clone()));
                for x in (0..=u32::MAX).step_by(65_521).chain(0x6440_0000..0x6440_0400) {
                    assert_eq!(lb.lookup(x), la.lookup(x), "{}", Ipv4Addr::from(x));
                }
            }
        }

        // With extra routes (`vpcsim up --extra-routes`) under the table's own: an own route of
        // the same prefix wins, and a longer extra route wins over a shorter own one.
        let mut prefixes = vec![net("100.64.0.0/16"), net("100.64.1.0/24")];
        prefixes.sort_by_key(|n| (u32::from(n.network()), n.prefix_len()));
        let extra = crate::fib::extra::Extra {
            prefixes: Box::leak(prefixes.into_boxed_slice()),
            hop: Hop::Blackhole,
        };
        let with = |r: &[(&'static str, Hop)]| [&default[..], r].concat();
        let cases: Vec<(Routes, Routes, bool)> = vec![
            // Under the extra /24 (blackhole), not the own default (igw).
            (default.to_vec(), with(&[("100.64.1.2/32", Hop::Igw)]), false),
            (default.to_vec(), with(&[("100.64.1.2/32", Hop::Blackhole)]), true),
            // The same prefix as an extra route: the own one wins.
            (default.to_vec(), with(&[("100.64.1.0/24", Hop::Igw)]), false),
            (default.to_vec(), with(&[("100.64.1.0/24", Hop::Blackhole)]), true),
            (with(&[("100.64.1.0/24", Hop::Igw)]), default.to_vec(), false),
            // An own route shorter than the extra ones: inside them they still win, and
            // outside them it gives the default's hop, or another.
            (default.to_vec(), with(&[("100.64.0.0/15", Hop::Igw)]), true),
            (default.to_vec(), with(&[("100.64.0.0/15", Hop::Local)]), false),
            (default.to_vec(), with(&[("100.64.1.0/25", Hop::Blackhole)]), true),
            // Outside the extra routes: only own routes count.
            (default.to_vec(), with(&[("100.66.0.0/16", Hop::Igw)]), true),
            (default.to_vec(), with(&[("100.66.0.0/16", Hop::Local)]), false),
        ];
        for (b, a, want) in cases {
            let (before, after) = (map(&b), map(&a));
            assert_eq!(same_lookups_after(&before, &after, Some(&extra)), want, "{b:?} -> {a:?}");
            // The reference: the extra routes first, the table's own on top (later wins).
            let fib = |own: &HashMap<Ipv4Net, Hop>| {
                let extras = extra.prefixes.iter().map(|n| (*n, extra.hop));
                Fib::from_routes(extras.chain(own.iter().map(|(n, h)| (*n, *h))))
            };
            let (lb, la) = (fib(&before), fib(&after));
            let differs = (0x6440_0000..0x6444_0000u32)
                .step_by(61)
                .chain(0x6440_0100..0x6440_0200)
                .any(|x| lb.lookup(x) != la.lookup(x));
            assert_eq!(!differs, want, "{b:?} -> {a:?}: the FIBs");
        }
    }

    #[test]
    fn route_only_change_detection() {
        let world = crate::lab::file::parse("demo", crate::lab::file::DEFAULT_LAB).unwrap();
        let mut w = world.clone();
        w.add_route(
            "rtb-0a0a0a0a",
            Route { destination: net("100.64.0.1/32"), target: Target::Igw("igw-1a2b3c4d".into()) },
        )
        .unwrap();
        assert_eq!(route_only_change(&world, &w), Some(vec!["rtb-0a0a0a0a".to_string()]));
        assert_eq!(route_only_change(&world, &world), Some(vec![]));
        let mut other = w.clone();
        other.next_id += 1;
        assert_eq!(route_only_change(&world, &other), None);
        let mut other = world.clone();
        other.route_tables.pop();
        assert_eq!(route_only_change(&world, &other), None);
        let mut other = world.clone();
        other.instances[0].source_dest_check = !other.instances[0].source_dest_check;
        assert_eq!(route_only_change(&world, &other), None);
    }
}
