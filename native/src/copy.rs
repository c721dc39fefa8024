//! Read one Avro body straight into a PostgreSQL binary COPY row, and a few of its values.
//!
//! A [`Plan`] is a writer schema flattened into leaves (every field that is not a record; a
//! record inside a `["null", record]` union is flattened too, all its leaves null when the
//! union is). A COPY column is a leaf's path (`["event", "usage", "input_tokens"]`) and the
//! column's type name; a kept value is a leaf's path and the name it is given in the dict
//! returned beside the row. Bytes are checked as strictly as `read` checks them, and more:
//! a value the column's type cannot take exactly (an `int4` out of range, a string holding
//! NUL, which PostgreSQL refuses in `text` and `jsonb`) refuses the record, which the caller
//! then takes through the Python path, as every refused record.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyString};

use crate::read::{
    decimal_unscaled, untrack, uuid_hex, Cursor, Reader, Refusal, MAX_MICROS, MIN_MICROS,
};
use crate::schema::Node;
use crate::sums::{Summed, ROLES};

type Read<T> = Result<T, Refusal>;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The PostgreSQL types a column may have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pg {
    Uuid,
    Timestamptz,
    Text,
    Int2,
    Int4,
    Int8,
    Bool,
    Numeric,
    Jsonb,
}

impl Pg {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "uuid" => Self::Uuid,
            "timestamptz" => Self::Timestamptz,
            "text" | "varchar" => Self::Text,
            "int2" => Self::Int2,
            "int4" => Self::Int4,
            "int8" => Self::Int8,
            "bool" => Self::Bool,
            "numeric" => Self::Numeric,
            "jsonb" => Self::Jsonb,
            _ => return None,
        })
    }
}

/// One leaf's type.
enum Kind {
    Null,
    Bool,
    Int,
    Long,
    Timestamp,
    Str,
    Uuid,
    Bytes,
    Decimal {
        limit: Option<u128>,
        exponent: i32,
    },
    Enum(Vec<(String, Py<PyString>)>),
    /// A map of strings (a `jsonb` object).
    StrMap,
    Union(Vec<Kind>),
}

/// A writer schema, flattened.
enum Plan {
    Leaf(Kind),
    Record(Vec<Plan>),
    /// `["null", record]` in either order: the byte of the null branch, the record, its leaves.
    Optional {
        null: u8,
        record: Box<Plan>,
        leaves: usize,
    },
}

/// A leaf's value in one body.
pub(crate) enum Leaf<'d, 'p> {
    Null,
    Bool(bool),
    Long(i64),
    Timestamp(i64),
    Str(&'d [u8], usize),
    Uuid([u8; 33], [u8; 16]),
    Bytes(&'d [u8]),
    Decimal(i128, i32),
    Symbol(&'p str, &'p Py<PyString>),
    Json(Vec<u8>),
}

fn kind(node: &Node, py: Python<'_>) -> Result<Kind, String> {
    Ok(match node {
        Node::Null => Kind::Null,
        Node::Boolean => Kind::Bool,
        Node::Int => Kind::Int,
        Node::Long => Kind::Long,
        Node::Timestamp(_) => Kind::Timestamp,
        Node::String(_) => Kind::Str,
        Node::Uuid => Kind::Uuid,
        Node::Bytes => Kind::Bytes,
        Node::Decimal { limit, exponent } => Kind::Decimal {
            limit: *limit,
            exponent: *exponent,
        },
        Node::Enum(symbols) => Kind::Enum(
            symbols
                .iter()
                .map(|s| {
                    Ok((
                        s.bind(py).to_str().map_err(|e| e.to_string())?.to_owned(),
                        s.clone_ref(py),
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
        Node::Map(values, _) => match values.as_ref() {
            Node::String(_) => Kind::StrMap,
            _ => return Err("a map of anything but strings".into()),
        },
        Node::Union(branches) => Kind::Union(
            branches
                .iter()
                .map(|b| match b {
                    Node::Record { .. } | Node::Union(_) => {
                        Err("a union with a record beside anything but null".to_string())
                    }
                    other => kind(other, py),
                })
                .collect::<Result<_, String>>()?,
        ),
        Node::Record { .. } => return Err("a record where a leaf was expected".into()),
    })
}

/// Flatten `node`; `paths` gets every leaf's path, in leaf order.
fn plan(
    node: &Node,
    py: Python<'_>,
    prefix: &mut Vec<String>,
    paths: &mut Vec<Vec<String>>,
) -> Result<Plan, String> {
    match node {
        Node::Record { fields, .. } => {
            let mut out = Vec::with_capacity(fields.len());
            for (name, field) in fields {
                prefix.push(
                    name.bind(py)
                        .to_str()
                        .map_err(|e| e.to_string())?
                        .to_owned(),
                );
                out.push(plan(field, py, prefix, paths)?);
                prefix.pop();
            }
            Ok(Plan::Record(out))
        }
        Node::Union(branches)
            if branches.len() == 2 && branches.iter().any(|b| matches!(b, Node::Record { .. })) =>
        {
            let (null, record) = match (&branches[0], &branches[1]) {
                (Node::Null, r @ Node::Record { .. }) => (0u8, r),
                (r @ Node::Record { .. }, Node::Null) => (2u8, r),
                _ => return Err("a union of a record and anything but null".into()),
            };
            let before = paths.len();
            let record = plan(record, py, prefix, paths)?;
            Ok(Plan::Optional {
                null,
                record: Box::new(record),
                leaves: paths.len() - before,
            })
        }
        other => {
            paths.push(prefix.clone());
            Ok(Plan::Leaf(kind(other, py)?))
        }
    }
}

/// A string's bytes, refused when not UTF-8 or holding NUL (which PostgreSQL refuses).
fn checked(raw: &[u8], at: usize) -> Read<&[u8]> {
    if raw.contains(&0) || std::str::from_utf8(raw).is_err() {
        return Err(Refusal::Utf8(at));
    }
    Ok(raw)
}

/// `raw` as a JSON string (RFC 8259 escapes).
fn json_string(out: &mut Vec<u8>, raw: &[u8]) {
    out.push(b'"');
    for &b in raw {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1F => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xF)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn leaf<'d, 'p>(c: &mut Cursor<'d>, kind: &'p Kind) -> Read<Leaf<'d, 'p>> {
    Ok(match kind {
        Kind::Null => Leaf::Null,
        Kind::Bool => match c.byte()? {
            0 => Leaf::Bool(false),
            1 => Leaf::Bool(true),
            b => return Err(Refusal::Boolean(b)),
        },
        Kind::Int => {
            let v = c.long()?;
            if i32::try_from(v).is_err() {
                return Err(Refusal::OutOfRange("int", v));
            }
            Leaf::Long(v)
        }
        Kind::Long => Leaf::Long(c.long()?),
        Kind::Timestamp => {
            let v = c.long()?;
            if !(MIN_MICROS..=MAX_MICROS).contains(&v) {
                return Err(Refusal::OutOfRange("timestamp-micros", v));
            }
            Leaf::Timestamp(v)
        }
        Kind::Str => {
            let at = c.pos;
            Leaf::Str(checked(c.slice()?, at)?, at)
        }
        Kind::Uuid => {
            let at = c.pos;
            let hex = uuid_hex(c.slice()?).ok_or(Refusal::Uuid(at))?;
            let mut bytes = [0u8; 16];
            for (i, b) in bytes.iter_mut().enumerate() {
                let pair =
                    std::str::from_utf8(&hex[2 * i..2 * i + 2]).map_err(|_| Refusal::Uuid(at))?;
                *b = u8::from_str_radix(pair, 16).map_err(|_| Refusal::Uuid(at))?;
            }
            Leaf::Uuid(hex, bytes)
        }
        Kind::Bytes => Leaf::Bytes(c.slice()?),
        Kind::Decimal { limit, exponent } => {
            let at = c.pos;
            let v = decimal_unscaled(c.slice()?, *limit).ok_or(Refusal::Decimal(at))?;
            Leaf::Decimal(v, *exponent)
        }
        Kind::Enum(symbols) => {
            let i = c.long()?;
            let (text, value) = usize::try_from(i)
                .ok()
                .and_then(|i| symbols.get(i))
                .ok_or(Refusal::EnumIndex(i))?;
            Leaf::Symbol(text, value)
        }
        Kind::StrMap => {
            let mut json = vec![b'{'];
            let mut first = true;
            loop {
                let count = c.block()?;
                if count == 0 {
                    break;
                }
                for _ in 0..count {
                    if !first {
                        json.push(b',');
                    }
                    first = false;
                    let at = c.pos;
                    json_string(&mut json, checked(c.slice()?, at)?);
                    json.push(b':');
                    let at = c.pos;
                    json_string(&mut json, checked(c.slice()?, at)?);
                }
            }
            json.push(b'}');
            Leaf::Json(json)
        }
        Kind::Union(branches) => {
            let b = c.byte()?;
            let branch = if b & 1 == 0 {
                branches.get(usize::from(b >> 1))
            } else {
                None
            };
            leaf(c, branch.ok_or(Refusal::UnionIndex(b))?)?
        }
    })
}

/// Read `plan` at the cursor, pushing its leaves.
fn walk<'d, 'p>(c: &mut Cursor<'d>, plan: &'p Plan, out: &mut Vec<Leaf<'d, 'p>>) -> Read<()> {
    match plan {
        Plan::Leaf(kind) => out.push(leaf(c, kind)?),
        Plan::Record(fields) => {
            for field in fields {
                walk(c, field, out)?;
            }
        }
        Plan::Optional {
            null,
            record,
            leaves,
        } => {
            let b = c.byte()?;
            if b == *null {
                out.extend((0..*leaves).map(|_| Leaf::Null));
            } else if b == 2 - *null {
                walk(c, record, out)?;
            } else {
                return Err(Refusal::UnionIndex(b));
            }
        }
    }
    Ok(())
}

/// PostgreSQL's binary `numeric`: base-10000 digits of `v * 10**exponent`, display scale
/// `-exponent` (what psycopg sends for `Decimal("<v>E<exponent>")`).
fn numeric(out: &mut Vec<u8>, v: i128, exponent: i32) -> Option<()> {
    let scale = usize::try_from(-i64::from(exponent)).ok()?;
    let mut digits = v.unsigned_abs().to_string().into_bytes();
    if digits.len() <= scale {
        let mut padded = vec![b'0'; scale + 1 - digits.len()];
        padded.extend_from_slice(&digits);
        digits = padded;
    }
    let int_len = digits.len() - scale;
    let lead = (4 - int_len % 4) % 4;
    let trail = (4 - scale % 4) % 4;
    let mut all = vec![b'0'; lead];
    all.extend_from_slice(&digits);
    all.extend(std::iter::repeat_n(b'0', trail));
    let mut groups: Vec<i16> = all
        .chunks(4)
        .map(|g| g.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = i16::try_from((lead + int_len) / 4).ok()? - 1;
    let first = groups.iter().position(|&g| g != 0);
    let (sign, ndigits) = match first {
        None => {
            groups.clear();
            weight = 0;
            (0u16, 0usize)
        }
        Some(first) => {
            groups.drain(..first);
            weight -= i16::try_from(first).ok()?;
            while groups.last() == Some(&0) {
                groups.pop();
            }
            (if v < 0 { 0x4000 } else { 0 }, groups.len())
        }
    };
    let len = 8 + 2 * ndigits;
    out.extend_from_slice(&i32::try_from(len).ok()?.to_be_bytes());
    out.extend_from_slice(&i16::try_from(ndigits).ok()?.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&i16::try_from(scale).ok()?.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(())
}

fn field(out: &mut Vec<u8>, data: &[u8]) {
    // Callers keep every value far below 2 GiB (a message is at most a few MB).
    out.extend_from_slice(&(data.len() as i32).to_be_bytes());
    out.extend_from_slice(data);
}

/// Write one column's value; refuse a value the column's type does not take exactly.
fn put(out: &mut Vec<u8>, pg: Pg, value: &Leaf<'_, '_>) -> Read<()> {
    let mismatch = || Refusal::Python("a value the column's type does not take".into());
    match (pg, value) {
        (_, Leaf::Null) => out.extend_from_slice(&(-1i32).to_be_bytes()),
        (Pg::Uuid, Leaf::Uuid(_, bytes)) => field(out, bytes),
        (Pg::Timestamptz, Leaf::Timestamp(micros)) => {
            field(out, &(micros - PG_EPOCH_MICROS).to_be_bytes());
        }
        (Pg::Text, Leaf::Str(raw, _)) => field(out, raw),
        (Pg::Text, Leaf::Symbol(text, _)) => field(out, text.as_bytes()),
        (Pg::Int2, Leaf::Long(v)) => {
            let v = i16::try_from(*v).map_err(|_| Refusal::OutOfRange("smallint", *v))?;
            field(out, &v.to_be_bytes());
        }
        (Pg::Int4, Leaf::Long(v)) => {
            let v = i32::try_from(*v).map_err(|_| Refusal::OutOfRange("integer", *v))?;
            field(out, &v.to_be_bytes());
        }
        (Pg::Int8, Leaf::Long(v)) => field(out, &v.to_be_bytes()),
        (Pg::Bool, Leaf::Bool(b)) => field(out, &[u8::from(*b)]),
        (Pg::Numeric, Leaf::Decimal(v, exponent)) => {
            numeric(out, *v, *exponent).ok_or_else(mismatch)?;
        }
        (Pg::Jsonb, Leaf::Json(json)) => {
            out.extend_from_slice(&((json.len() + 1) as i32).to_be_bytes());
            out.push(1);
            out.extend_from_slice(json);
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// A COPY row to make: the key it is returned under, its columns as leaf indexes, and its
/// field count (the columns, and any the caller appends).
struct Table {
    key: Py<PyString>,
    columns: Vec<(usize, Pg)>,
    fields: i16,
}

/// One writer's plan, its COPY rows and its kept values as leaf indexes.
pub(crate) struct Layout {
    plan: Plan,
    tables: Vec<Table>,
    keep: Vec<(Py<PyString>, usize, i64)>,
    /// The leaf of each value the batch's sums are made from, when asked for.
    roles: Option<[usize; ROLES]>,
}

/// What a caller asks for one COPY row: its key, its `(leaf path, type name)` columns, and
/// how many fields it appends itself.
pub(crate) type TableSpec = (String, Vec<(Vec<String>, String)>, usize);

/// One body read without Python: its leaves (borrowing the body and the layout) and the COPY
/// row of each table, in the layout's order.
pub(crate) struct Parsed<'d, 'p> {
    leaves: Vec<Leaf<'d, 'p>>,
    rows: Vec<Vec<u8>>,
}

/// A value to return beside the rows: its name, its leaf path, and for a timestamp a unit in
/// microseconds to truncate it to (0: as it is).
pub(crate) type KeepSpec = (String, Vec<String>, i64);

impl Layout {
    pub(crate) fn new(
        py: Python<'_>,
        root: &Node,
        tables: &[TableSpec],
        keep: &[KeepSpec],
        roles: Option<&[Vec<String>]>,
    ) -> PyResult<Self> {
        let mut paths = Vec::new();
        let plan = plan(root, py, &mut Vec::new(), &mut paths)
            .map_err(|e| PyValueError::new_err(format!("schema not covered: {e}")))?;
        let index = |path: &[String]| {
            paths
                .iter()
                .position(|p| p == path)
                .ok_or_else(|| PyValueError::new_err(format!("no leaf {path:?} in the schema")))
        };
        let tables = tables
            .iter()
            .map(|(key, columns, appended)| {
                let columns = columns
                    .iter()
                    .map(|(path, pg)| {
                        let pg = Pg::parse(pg)
                            .ok_or_else(|| PyValueError::new_err(format!("column type {pg:?}")))?;
                        Ok((index(path)?, pg))
                    })
                    .collect::<PyResult<Vec<_>>>()?;
                let fields = i16::try_from(columns.len() + appended)
                    .map_err(|_| PyValueError::new_err("too many columns"))?;
                Ok(Table {
                    key: PyString::intern(py, key).unbind(),
                    columns,
                    fields,
                })
            })
            .collect::<PyResult<_>>()?;
        let keep = keep
            .iter()
            .map(|(name, path, unit)| {
                if *unit < 0 || (*unit > 0 && MIN_MICROS % unit != 0) {
                    return Err(PyValueError::new_err(format!("truncation unit {unit}")));
                }
                Ok((PyString::intern(py, name).unbind(), index(path)?, *unit))
            })
            .collect::<PyResult<_>>()?;
        let roles = match roles {
            None => None,
            Some(paths) if paths.len() == ROLES => {
                let mut at = [0usize; ROLES];
                for (slot, path) in at.iter_mut().zip(paths) {
                    *slot = index(path)?;
                }
                Some(at)
            }
            Some(paths) => {
                return Err(PyValueError::new_err(format!(
                    "{} sums paths, not {ROLES}",
                    paths.len()
                )))
            }
        };
        Ok(Self {
            plan,
            tables,
            keep,
            roles,
        })
    }

    /// Add a parsed body to the batch's sums; `None` where it cannot be summed (or the sums
    /// were not asked for).
    pub(crate) fn add_to<'a>(&self, sums: &mut Summed<'a>, parsed: &Parsed<'a, 'a>) -> Option<()> {
        sums.add(&parsed.leaves, self.roles.as_ref()?)
    }

    /// The leaves of the body `data[pos..]`, which must be read to its end; no Python.
    fn leaves<'d, 'p>(&'p self, data: &'d [u8], pos: usize) -> Read<Vec<Leaf<'d, 'p>>> {
        let mut c = Cursor { data, pos };
        let mut leaves = Vec::with_capacity(80);
        walk(&mut c, &self.plan, &mut leaves)?;
        if c.pos != data.len() {
            return Err(Refusal::Trailing(data.len() - c.pos));
        }
        Ok(leaves)
    }

    /// The dict of the kept values of the body `data[pos..]` (which must be read to its
    /// end), with each table's COPY row (bytes) under its key.
    pub(crate) fn row<'py>(
        &self,
        reader: &mut Reader<'_, 'py>,
        data: &[u8],
        pos: usize,
    ) -> Read<Bound<'py, PyDict>> {
        let parsed = self.parse(data, pos)?;
        self.build(reader, &parsed)
    }

    /// The part of [`Layout::row`] that needs no Python: the body read to its end into its
    /// leaves, and each table's COPY row. Runs with the GIL released (see `CopyRows::rows`).
    pub(crate) fn parse<'d, 'p>(&'p self, data: &'d [u8], pos: usize) -> Read<Parsed<'d, 'p>> {
        let leaves = self.leaves(data, pos)?;
        let mut rows = Vec::with_capacity(self.tables.len());
        for table in &self.tables {
            let mut out = Vec::with_capacity(data.len() * 2 + 4 * table.columns.len());
            out.extend_from_slice(&table.fields.to_be_bytes());
            for &(i, pg) in &table.columns {
                put(&mut out, pg, &leaves[i])?;
            }
            rows.push(out);
        }
        Ok(Parsed { leaves, rows })
    }

    /// The rest of [`Layout::row`], with the GIL: the dict of the COPY rows and kept values.
    pub(crate) fn build<'py>(
        &self,
        reader: &mut Reader<'_, 'py>,
        parsed: &Parsed<'_, '_>,
    ) -> Read<Bound<'py, PyDict>> {
        let py = reader.py();
        let leaves = &parsed.leaves;
        let dict = PyDict::new(py);
        let fail = |e: PyErr| Refusal::Python(e.to_string());
        for (table, out) in self.tables.iter().zip(&parsed.rows) {
            dict.set_item(table.key.bind(py), PyBytes::new(py, out))
                .map_err(fail)?;
        }
        for (slot, (name, i, unit)) in self.keep.iter().enumerate() {
            let value = match &leaves[*i] {
                Leaf::Null => py.None().into_bound(py),
                Leaf::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
                Leaf::Long(v) => match v.into_pyobject(py) {
                    Ok(int) => int.into_any(),
                    Err(never) => match never {},
                },
                Leaf::Timestamp(micros) if *unit > 0 => {
                    reader.timestamp(slot, micros - micros.rem_euclid(*unit))?
                }
                Leaf::Timestamp(micros) => reader.timestamp(slot, *micros)?,
                Leaf::Str(raw, at) => reader.string_value(raw, slot, *at)?,
                Leaf::Uuid(hex, _) => reader.uuid_value(hex)?,
                Leaf::Bytes(raw) => PyBytes::new(py, raw).into_any(),
                Leaf::Decimal(v, exponent) => reader.decimal_cached(slot, *v, *exponent)?,
                Leaf::Symbol(_, value) => value.bind(py).clone().into_any(),
                Leaf::Json(_) => return Err(Refusal::Python("a map is not kept".into())),
            };
            dict.set_item(name.bind(py), value).map_err(fail)?;
        }
        // Only atoms and bytes in it: out of the cycle collector's sight (see read::untrack).
        untrack(dict.as_any());
        Ok(dict)
    }
}
