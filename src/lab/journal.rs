//! The journal of route changes beside `world.json`.
//!
//! A change that touches only route tables' routes (CreateRoute, DeleteRoute, ReplaceRoute, …)
//! is made durable by appending one line to `<state-dir>/journal.jsonl` and `fdatasync`ing it,
//! instead of rewriting world.json (a temporary file written and fsync'd, renamed, the directory
//! fsync'd): one sync instead of two, no rename, and bytes in proportion to the changed tables,
//! not to the world. Every other change rewrites world.json, and so does a route change once the
//! journal holds [`MAX_RECORDS`] records or [`MAX_BYTES`]; a rewrite removes the journal, whose
//! records it holds. `vpcsim up` rewrites world.json when it starts, so a resumed lab starts with
//! no journal.
//!
//! Sequence numbers: every change gets a new, higher [`Saved::seq`] (a failed one too, so a
//! number is never used twice); world.json carries the seq of the state it holds, and each
//! record the seq of the state it makes. Loading replays on world.json the records after its
//! seq, in order; a record at or before it was folded into world.json by a rewrite that stopped
//! before the journal was removed. A last line without its newline is an append that never
//! finished, so a change never acknowledged: it is ignored. Any other line that does not parse,
//! records out of order, a record naming a route table world.json does not have, or a record
//! whose routes the model refuses (a new route CreateRoute would refuse, such as one to a
//! gateway that does not exist; a table that breaks the rules [`crate::model::World::check`]
//! checks) is an error naming the file, the line and the field: nothing is guessed, and nothing
//! is dropped silently. (A record
//! written whole whose sync then failed stays, if neither the rewrite that follows the failure
//! nor the restore of the last acknowledged world could remove the journal: like an AWS call
//! answered with a 500, that change may then reappear; it never hides another.)

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::control::Saved;
use crate::model::RouteTable;

/// Records after which a route change rewrites world.json instead (which empties the journal).
pub const MAX_RECORDS: usize = 1000;
/// Journal size after which a route change rewrites world.json instead.
pub const MAX_BYTES: u64 = 4 << 20;

/// One line of the journal: the changed route tables, whole, as the change left them.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    seq: u64,
    route_tables: Vec<RouteTable>,
}

/// The open journal of a running lab (under the change lock).
#[derive(Debug, Default)]
pub struct Journal {
    file: Option<File>,
    records: usize,
    bytes: u64,
    /// An append failed: nothing more is appended until world.json is rewritten (the file may
    /// end in part of a line).
    broken: bool,
}

impl Journal {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("journal.jsonl")
    }

    /// Makes `saved` durable as a record of `tables` (the route tables the change touched, with
    /// nothing else in the world changed since the last acknowledged state). `Ok(false)`:
    /// the journal is full or broken and world.json is to be rewritten instead. On an error the
    /// change is not durable through the journal, which is not used again until a rewrite.
    pub fn append(
        &mut self,
        state_dir: &Path,
        saved: &Saved,
        tables: &[String],
    ) -> anyhow::Result<bool> {
        if self.broken || self.records >= MAX_RECORDS || self.bytes >= MAX_BYTES {
            return Ok(false);
        }
        let record = Record {
            seq: saved.seq,
            route_tables: saved
                .world
                .route_tables
                .iter()
                .filter(|t| tables.contains(&t.id))
                .cloned()
                .collect(),
        };
        let mut line = serde_json::to_vec(&record)?;
        line.push(b'\n');
        let written = (|| -> anyhow::Result<()> {
            if self.file.is_none() {
                let path = Self::path(state_dir);
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                // The new file's name is made durable once, not on every append.
                File::open(state_dir)?.sync_all()?;
                self.bytes = f.metadata()?.len();
                self.file = Some(f);
            }
            let f = self.file.as_mut().expect("opened above");
            f.write_all(&line)?;
            f.sync_data()?;
            Ok(())
        })();
        match written {
            Ok(()) => {
                self.records += 1;
                self.bytes += line.len() as u64;
                Ok(true)
            }
            Err(e) => {
                *self = Journal { broken: true, ..Journal::default() };
                Err(e.context("appending to the journal"))
            }
        }
    }

    /// world.json was rewritten (and the journal file removed): start afresh.
    pub fn folded(&mut self) {
        *self = Journal::default();
    }
}

/// Removes the journal after a rewrite of world.json that holds its records.
pub fn remove(state_dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(Journal::path(state_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context("removing the folded journal")
        }
        _ => Ok(()),
    }
}

/// Replays the journal of `state_dir` on `saved` (just read from world.json). `Ok(true)`: a
/// record changed it.
pub fn replay(state_dir: &Path, saved: &mut Saved) -> anyhow::Result<bool> {
    let path = Journal::path(state_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let folded = saved.seq;
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        if !line.ends_with(b"\n") {
            // The last append never finished: that change was never acknowledged.
            tracing::warn!(file = %path.display(), line = n, "ignoring an unfinished last record");
            break;
        }
        let record: Record = serde_json::from_slice(line)
            .with_context(|| format!("{} line {n}: not a journal record", path.display()))?;
        if record.seq <= folded {
            continue; // in world.json already
        }
        if record.seq <= saved.seq {
            bail!(
                "{} line {n}: record {} follows record {}: out of order",
                path.display(),
                record.seq,
                saved.seq
            );
        }
        for (k, t) in record.route_tables.into_iter().enumerate() {
            let Some(at) =
                saved.world.route_tables.iter().position(|m| m.id == t.id && m.vpc == t.vpc)
            else {
                bail!(
                    "{} line {n}: route table {} ({}) is not in world.json",
                    path.display(),
                    t.id,
                    t.vpc
                );
            };
            // A record holds what CreateRoute, ReplaceRoute and DeleteRoute left: a new route is
            // one those admitted (the whole world is checked again once replayed).
            saved.world.check_new_routes(&t.id, &t.routes).map_err(|e| {
                let (file, field) = (path.display(), e.field);
                anyhow!("{file} line {n}: route_tables[{k}].{field} ({}): {}", e.id, e.error)
            })?;
            saved.world.route_tables[at].routes = t.routes;
        }
        saved.seq = record.seq;
    }
    Ok(saved.seq != folded)
}
