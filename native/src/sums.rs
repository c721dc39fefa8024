//! What a batch of priced events adds to `usage_rollup_1m` and to `usage_tenant_daily`,
//! summed from their Avro bodies without Python (the sink's `rollups.deltas` and
//! `tenant_daily.deltas` for newly stored events, to the last digit).
//!
//! A body's values are read by role ([`Role`]: the leaf paths the caller gives, in that
//! order). Groups keep the order in which their keys first appear. Integers are summed as
//! `i128`, decimals as `i128` at the smallest exponent met (Python's `Decimal` addition);
//! an overflow refuses the batch, which the caller then sums with Python.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::copy::Leaf;
use crate::read::Refusal;

/// The roles, in the order of the paths given to `CopyRows::new`.
#[derive(Clone, Copy)]
#[repr(usize)]
enum Role {
    Tenant,
    OccurredAt,
    Provider,
    Canonical,
    Response,
    Request,
    Deployment,
    Project,
    Team,
    AttributedTeam,
    Currency,
    Success,
    Status,
    /// The five token counts follow, then `cost_total`, then the six cost parts.
    Tokens,
    CostTotal = Role::Tokens as usize + 5,
    Costs,
    Latency = Role::Costs as usize + 6,
    /// Not summed: the batch is told whether two of its rows share one.
    EventId,
}

/// How many roles a caller gives paths for.
pub(crate) const ROLES: usize = Role::EventId as usize + 1;

const MINUTE: i64 = 60_000_000;
const QUARTER: i64 = 900_000_000;

type Text<'d> = Option<&'d [u8]>;
/// A decimal: unscaled value and exponent.
type Dec = (i128, i32);

fn add_dec(acc: &mut Option<Dec>, (v, e): Dec) -> Option<()> {
    *acc = Some(match *acc {
        None => (v, e),
        Some((w, f)) => {
            let low = e.min(f);
            let up = |x: i128, from: i32| {
                10i128
                    .checked_pow(u32::try_from(from - low).ok()?)
                    .and_then(|p| x.checked_mul(p))
            };
            (up(w, f)?.checked_add(up(v, e)?)?, low)
        }
    });
    Some(())
}

/// The sums of one group: requests, failures, unpriced, the five tokens, the latency sum.
#[derive(Default)]
struct Counts {
    requests: i128,
    failures: i128,
    unpriced: i128,
    tokens: [i128; 5],
    latency_sum: i128,
    latency_max: i64,
}

impl Counts {
    fn add(&mut self, row: &Row<'_>, unpriced: bool) -> Option<()> {
        self.requests += 1;
        self.failures += i128::from(!row.success);
        self.unpriced += i128::from(unpriced);
        for (sum, v) in self.tokens.iter_mut().zip(row.tokens) {
            *sum = sum.checked_add(i128::from(v))?;
        }
        self.latency_sum = self.latency_sum.checked_add(i128::from(row.latency))?;
        self.latency_max = self.latency_max.max(row.latency);
        Some(())
    }
}

#[derive(Default)]
struct Minute<'d> {
    counts: Counts,
    cost: Option<Dec>,
    currency: Text<'d>,
}

#[derive(Default)]
struct Daily {
    counts: Counts,
    costs: [Option<Dec>; 6],
}

/// One body's values, by role.
struct Row<'d> {
    tenant: &'d [u8],
    micros: i64,
    provider: &'d [u8],
    models: [Text<'d>; 4],
    project: Text<'d>,
    team: Text<'d>,
    currency: Text<'d>,
    success: bool,
    unpriced: bool,
    tokens: [i64; 5],
    cost_total: Option<Dec>,
    costs: [Option<Dec>; 6],
    latency: i64,
}

fn text<'d>(leaf: &Leaf<'d, 'd>) -> Result<Text<'d>, Refusal> {
    match leaf {
        Leaf::Null => Ok(None),
        Leaf::Str(raw, _) => Ok(Some(raw)),
        Leaf::Symbol(text, _) => Ok(Some(text.as_bytes())),
        _ => Err(Refusal::Python("not a string".into())),
    }
}

fn long(leaf: &Leaf<'_, '_>) -> Result<i64, Refusal> {
    match leaf {
        Leaf::Long(v) => Ok(*v),
        _ => Err(Refusal::Python("not an integer".into())),
    }
}

fn dec(leaf: &Leaf<'_, '_>) -> Result<Option<Dec>, Refusal> {
    match leaf {
        Leaf::Null => Ok(None),
        Leaf::Decimal(v, e) => Ok(Some((*v, *e))),
        _ => Err(Refusal::Python("not a decimal".into())),
    }
}

fn row<'d>(leaves: &[Leaf<'d, 'd>], at: &[usize; ROLES]) -> Result<Row<'d>, Refusal> {
    let get = |role: Role| &leaves[at[role as usize]];
    let shifted = |role: Role, by: usize| &leaves[at[role as usize + by]];
    let required = |role: Role| text(get(role))?.ok_or(Refusal::Python("a null key".into()));
    let Leaf::Timestamp(micros) = get(Role::OccurredAt) else {
        return Err(Refusal::Python("not a timestamp".into()));
    };
    let status = text(get(Role::Status))?;
    let mut tokens = [0i64; 5];
    for (i, t) in tokens.iter_mut().enumerate() {
        *t = long(shifted(Role::Tokens, i))?;
    }
    let mut costs = [None; 6];
    for (i, c) in costs.iter_mut().enumerate() {
        *c = dec(shifted(Role::Costs, i))?;
    }
    Ok(Row {
        tenant: required(Role::Tenant)?,
        micros: *micros,
        provider: required(Role::Provider)?,
        models: [
            text(get(Role::Canonical))?,
            text(get(Role::Response))?,
            text(get(Role::Request))?,
            text(get(Role::Deployment))?,
        ],
        project: text(get(Role::Project))?,
        team: text(get(Role::AttributedTeam))?.or(text(get(Role::Team))?),
        currency: text(get(Role::Currency))?,
        success: matches!(get(Role::Success), Leaf::Bool(true)),
        unpriced: status == Some(b"unpriced".as_slice()),
        tokens,
        cost_total: dec(get(Role::CostTotal))?,
        costs,
        latency: long(get(Role::Latency))?,
    })
}

type MinuteKey<'d> = (&'d [u8], i64, &'d [u8], &'d [u8]);
type DailyKey<'d> = (
    &'d [u8],
    i64,
    &'d [u8],
    Text<'d>,
    Text<'d>,
    Text<'d>,
    Text<'d>,
);

/// Groups in the order their keys first appear.
struct Groups<K, V> {
    at: HashMap<K, usize>,
    groups: Vec<(K, V)>,
}

impl<K: std::hash::Hash + Eq + Copy, V: Default> Groups<K, V> {
    fn new() -> Self {
        Self {
            at: HashMap::default(),
            groups: Vec::new(),
        }
    }

    fn get(&mut self, key: K) -> &mut V {
        let groups = &mut self.groups;
        let i = *self.at.entry(key).or_insert_with(|| {
            groups.push((key, V::default()));
            groups.len() - 1
        });
        &mut self.groups[i].1
    }
}

/// The sums of a batch, before they become Python values.
pub(crate) struct Summed<'d> {
    minutes: Groups<MinuteKey<'d>, Minute<'d>>,
    days: Groups<DailyKey<'d>, Daily>,
    /// The event ids met, while no two rows shared one (see `distinct`).
    ids: HashSet<[u8; 16]>,
    distinct: bool,
}

const UNKNOWN: &[u8] = b"unknown";

impl<'d> Summed<'d> {
    pub(crate) fn new() -> Self {
        Self {
            minutes: Groups::new(),
            days: Groups::new(),
            ids: HashSet::default(),
            distinct: true,
        }
    }

    /// Whether no two rows added had one event id (an id not read as a UUID counts as shared).
    pub(crate) fn distinct(&self) -> bool {
        self.distinct
    }

    /// Add one body's leaves; `None` on an overflow or a value of another type than expected.
    pub(crate) fn add(&mut self, leaves: &[Leaf<'d, 'd>], at: &[usize; ROLES]) -> Option<()> {
        let row = row(leaves, at).ok()?;
        if self.distinct {
            self.distinct = match &leaves[at[Role::EventId as usize]] {
                Leaf::Uuid(_, id) => self.ids.insert(*id),
                _ => false,
            };
        }
        // rollups.model_of: the first model named and not empty.
        let model = row.models.iter().flatten().find(|m| !m.is_empty());
        let key = (
            row.tenant,
            row.micros - row.micros.rem_euclid(MINUTE),
            row.provider,
            model.copied().unwrap_or(UNKNOWN),
        );
        let minute = self.minutes.get(key);
        let unpriced = row.unpriced || row.cost_total.is_none();
        minute.counts.add(&row, unpriced)?;
        if let (false, Some(cost)) = (unpriced, row.cost_total) {
            add_dec(&mut minute.cost, cost)?;
        }
        minute.currency = row.currency;
        // tenant_daily.quarter_key: the first model that is not null, the attributed team.
        let key = (
            row.tenant,
            row.micros - row.micros.rem_euclid(QUARTER),
            row.provider,
            row.models[..3].iter().flatten().next().copied(),
            row.project,
            row.team,
            row.currency,
        );
        let day = self.days.get(key);
        day.counts.add(&row, row.unpriced)?;
        for (sum, cost) in day.costs.iter_mut().zip(row.costs) {
            if let Some(cost) = cost {
                add_dec(sum, cost)?;
            }
        }
        Some(())
    }

    /// `(minutes, days)`: per group, its key's values then its sums (see `CopyRows::new`).
    #[allow(clippy::type_complexity)]
    pub(crate) fn into_py<'py>(
        self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let s = |t: Text<'_>| t.map(|b| String::from_utf8_lossy(b).into_owned());
        let counts = |c: &Counts| -> Vec<i128> {
            let mut out = vec![c.requests, c.failures, c.unpriced];
            out.extend(c.tokens);
            out.extend([c.latency_sum, i128::from(c.latency_max)]);
            out
        };
        let minutes = PyList::empty(py);
        for ((tenant, start, provider, model), m) in &self.minutes.groups {
            let key = (s(Some(tenant)), start, s(Some(provider)), s(Some(model)));
            minutes.append((key, counts(&m.counts), m.cost, s(m.currency)))?;
        }
        let days = PyList::empty(py);
        for ((tenant, start, provider, model, project, team, currency), d) in &self.days.groups {
            let key = (
                s(Some(tenant)),
                start,
                s(Some(provider)),
                s(*model),
                s(*project),
                s(*team),
                s(*currency),
            );
            days.append((key, counts(&d.counts), d.costs.to_vec()))?;
        }
        Ok((minutes, days))
    }
}
