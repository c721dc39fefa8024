//! Tokenline's batch Avro decoder and body writer.
//!
//! `BatchDecoder(writers)` takes the writer schemas it may read, as `(fingerprint, schema
//! JSON)` pairs (the 8-byte CRC-64-AVRO fingerprint in single-object order). Its
//! `decode(values)` reads a list of single-object-encoded messages (`C3 01`, fingerprint,
//! body) and returns a list of the same length: each message's record, or `None` where the
//! decoder refuses it. It refuses whatever it cannot read exactly as tokenline.schemas'
//! Python reader does (see `read`), including every malformed body: the caller reads those
//! with Python, which either reads them or raises the error it always raised.
//!
//! `BodyWriter(schema_json)` is the other direction: its `write(record)` returns the Avro
//! binary body of `record`, or `None` where it refuses the value (see `write`): the caller
//! writes those with Python, which writes them or raises the error it always raised.

mod copy;
mod read;
mod schema;
mod sums;
mod write;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::copy::{KeepSpec, Layout, Parsed, TableSpec};
use crate::read::{Caches, Context, Reader, Refusal};
use crate::schema::Program;
use crate::sums::Summed;

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER: usize = 10;

/// What `writers` holds for the writer of the single-object-encoded message `data`.
fn writer_of<'w, T>(writers: &'w [([u8; 8], T)], data: &[u8]) -> Result<&'w T, Refusal> {
    if data.len() < HEADER || data[..2] != MAGIC {
        return Err(Refusal::Header);
    }
    writers
        .iter()
        .find(|(fp, _)| fp[..] == data[2..HEADER])
        .map(|(_, found)| found)
        .ok_or(Refusal::UnknownFingerprint)
}

/// The writer schemas given as `(fingerprint, schema JSON)` pairs, each compiled by `make`.
fn compile_writers<T>(
    py: Python<'_>,
    writers: Vec<(Vec<u8>, String)>,
    mut make: impl FnMut(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Vec<([u8; 8], T)>> {
    let loads = py.import("json")?.getattr("loads")?;
    let mut compiled = Vec::with_capacity(writers.len());
    for (fingerprint, json) in writers {
        let fingerprint: [u8; 8] = fingerprint
            .as_slice()
            .try_into()
            .map_err(|_| PyValueError::new_err("a fingerprint is 8 bytes"))?;
        compiled.push((fingerprint, make(&loads.call1((json,))?)?));
    }
    Ok(compiled)
}

fn compile(parsed: &Bound<'_, PyAny>) -> PyResult<Program> {
    schema::compile(parsed).map_err(|e| PyValueError::new_err(format!("schema not covered: {e}")))
}

/// Decodes batches of single-object-encoded Avro records into Python values.
#[pyclass(frozen, module = "tokenline_native")]
struct BatchDecoder {
    writers: Vec<([u8; 8], Program)>,
    caches: Caches,
    ctx: Context,
}

impl BatchDecoder {
    fn one<'py>(
        &self,
        reader: &mut Reader<'_, 'py>,
        value: &Bound<'py, PyAny>,
    ) -> Result<Bound<'py, PyAny>, Refusal> {
        let bytes = value.cast::<PyBytes>().map_err(|_| Refusal::NotBytes)?;
        let data = bytes.as_bytes();
        reader.read(&writer_of(&self.writers, data)?.root, data, HEADER)
    }
}

#[pymethods]
impl BatchDecoder {
    /// `writers`: `(fingerprint, schema_json)` pairs; raises ValueError for a schema using a
    /// type this decoder does not cover.
    #[new]
    fn new(py: Python<'_>, writers: Vec<(Vec<u8>, String)>) -> PyResult<Self> {
        let compiled = compile_writers(py, writers, compile)?;
        let caches = Caches {
            timestamps: compiled
                .iter()
                .map(|(_, p)| p.timestamps)
                .max()
                .unwrap_or(0),
            strings: compiled.iter().map(|(_, p)| p.strings).max().unwrap_or(0),
        };
        Ok(Self {
            writers: compiled,
            caches,
            ctx: Context::new(py)?,
        })
    }

    /// The record of each message in `values` (a list), or `None` where it is refused.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut reader = Reader::new(py, &self.ctx, self.caches);
        let out: Vec<Bound<'py, PyAny>> = values
            .iter()
            .map(|value| {
                self.one(&mut reader, &value)
                    .unwrap_or_else(|_| py.None().into_bound(py))
            })
            .collect();
        PyList::new(py, out)
    }

    /// Why `decode` refuses `value`, or `None` when it reads it (for tests and debugging).
    fn refusal(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> Option<String> {
        let mut reader = Reader::new(py, &self.ctx, self.caches);
        self.one(&mut reader, value).err().map(|r| r.to_string())
    }
}

/// Reads batches of single-object-encoded Avro records straight into PostgreSQL binary COPY
/// rows (see `copy`).
/// Messages `CopyRows::rows` reads between two holds of the GIL.
const CHUNK: usize = 64;

#[pyclass(frozen, module = "tokenline_native")]
struct CopyRows {
    writers: Vec<([u8; 8], Layout)>,
    /// The key each row's dict holds the batch's sums under, when asked for (see `sums`).
    sums_key: Option<Py<PyString>>,
    /// The key each row's dict holds its message (the bytes object) under, when asked for.
    body_key: Option<Py<PyString>>,
    caches: Caches,
    ctx: Context,
}

#[pymethods]
impl CopyRows {
    /// `writers`: `(fingerprint, schema_json)` pairs; `tables`: per COPY row to make, the key
    /// it is returned under, its columns in order as `(leaf path, PostgreSQL type name)`,
    /// and how many fields the caller appends to it; `keep`: `(name, leaf path, unit)` of the
    /// values returned beside the rows (a timestamp truncated to `unit` microseconds when
    /// above 0); `sums`: a key and the leaf paths of `sums::Role`, for every row's dict to
    /// hold under that key, when every row made could be summed,
    /// `(rows made, minutes, days, distinct)`: the batch's rollup and tenant-daily groups, in
    /// the order their keys first appear, each its key's values, its counts (requests,
    /// failures, unpriced, the five token counts, the latency sum and maximum) and its costs
    /// (`(unscaled, exponent)` or `None`), the minute's currency last; `distinct`: no two rows
    /// made share an event id; `body`: a key for every row's dict to hold its message under.
    /// Raises ValueError for a schema, a path, a type or a unit it does not cover.
    #[new]
    fn new(
        py: Python<'_>,
        writers: Vec<(Vec<u8>, String)>,
        tables: Vec<TableSpec>,
        keep: Vec<KeepSpec>,
        sums: Option<(String, Vec<Vec<String>>)>,
        body: Option<String>,
    ) -> PyResult<Self> {
        let roles = sums.as_ref().map(|(_, roles)| roles.as_slice());
        let compiled = compile_writers(py, writers, |parsed| {
            Layout::new(py, &compile(parsed)?.root, &tables, &keep, roles)
        })?;
        Ok(Self {
            sums_key: sums.map(|(key, _)| PyString::intern(py, &key).unbind()),
            body_key: body.map(|key| PyString::intern(py, &key).unbind()),
            writers: compiled,
            caches: Caches {
                timestamps: keep.len(),
                strings: keep.len(),
            },
            ctx: Context::new(py)?,
        })
    }

    /// Per message of `values` (a list): a dict of the kept values holding each COPY row
    /// (bytes) under its key, or `None` where the message is refused.
    ///
    /// A few messages at a time ([`CHUNK`]), in two passes: their bodies are read and their
    /// COPY rows made with the GIL released (the bytes objects stay referenced by `items`,
    /// and bytes are immutable), so another Python thread runs meanwhile (the sink landing the
    /// previous batch); then, with the GIL, each one's dict is built. Few at a time, so what
    /// the first pass made is still in the CPU's caches when the second reads it.
    fn rows<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<Bound<'py, PyAny>> = values.iter().collect();
        let bodies: Vec<Option<&[u8]>> = items
            .iter()
            .map(|value| value.cast::<PyBytes>().ok().map(|b| b.as_bytes()))
            .collect();
        let writers = &self.writers;
        let mut reader = Reader::new(py, &self.ctx, self.caches);
        let mut out: Vec<Bound<'py, PyAny>> = Vec::with_capacity(items.len());
        // The sums of the rows made (None once one could not be summed).
        let mut summed = self.sums_key.as_ref().map(|_| Summed::new());
        let mut made = 0usize;
        for chunk in bodies.chunks(CHUNK) {
            let parsed: Vec<Result<(&Layout, Parsed<'_, '_>), Refusal>> = py.detach(|| {
                chunk
                    .iter()
                    .map(|body| {
                        let data = body.ok_or(Refusal::NotBytes)?;
                        let layout = writer_of(writers, data)?;
                        let parsed = layout.parse(data, HEADER)?;
                        if let Some(sums) = summed.as_mut() {
                            if layout.add_to(sums, &parsed).is_none() {
                                summed = None;
                            }
                        }
                        Ok((layout, parsed))
                    })
                    .collect()
            });
            for (done, item) in parsed.iter().zip(&items[out.len()..]) {
                let row = match done {
                    Ok((layout, parsed)) => match layout.build(&mut reader, parsed) {
                        Ok(row) => {
                            made += 1;
                            if let Some(key) = &self.body_key {
                                row.set_item(key.bind(py), item)?;
                            }
                            row.into_any()
                        }
                        Err(_) => {
                            summed = None; // summed, yet not made: the sums do not hold
                            py.None().into_bound(py)
                        }
                    },
                    Err(_) => py.None().into_bound(py),
                };
                out.push(row);
            }
        }
        if let (Some(key), Some(summed)) = (&self.sums_key, summed) {
            if made > 0 {
                let distinct = summed.distinct();
                let (minutes, days) = summed.into_py(py)?;
                let sums = (made, minutes, days, distinct).into_pyobject(py)?;
                for row in out.iter().filter(|row| !row.is_none()) {
                    row.cast::<pyo3::types::PyDict>()?
                        .set_item(key.bind(py), &sums)?;
                }
            }
        }
        PyList::new(py, out)
    }

    /// Why `rows` refuses `value`, or `None` when it takes it (for tests and debugging).
    fn refusal(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> Option<String> {
        let mut reader = Reader::new(py, &self.ctx, self.caches);
        self.one(&mut reader, value).err().map(|r| r.to_string())
    }
}

impl CopyRows {
    fn one<'py>(
        &self,
        reader: &mut Reader<'_, 'py>,
        value: &Bound<'py, PyAny>,
    ) -> Result<Bound<'py, pyo3::types::PyDict>, Refusal> {
        let bytes = value.cast::<PyBytes>().map_err(|_| Refusal::NotBytes)?;
        let data = bytes.as_bytes();
        writer_of(&self.writers, data)?.row(reader, data, HEADER)
    }
}

/// Writes records of one schema as Avro binary bodies (no header).
#[pyclass(frozen, module = "tokenline_native")]
struct BodyWriter {
    root: schema::Node,
    ctx: write::Context,
}

#[pymethods]
impl BodyWriter {
    /// `schema_json`: one self-contained schema (named types defined where first used);
    /// raises ValueError for a schema using a type this writer does not cover.
    #[new]
    fn new(py: Python<'_>, schema_json: &str) -> PyResult<Self> {
        let parsed = py.import("json")?.getattr("loads")?.call1((schema_json,))?;
        let program = schema::compile(&parsed)
            .and_then(|program| write::check(&program.root).map(|()| program))
            .map_err(|e| PyValueError::new_err(format!("schema not covered: {e}")))?;
        Ok(Self {
            root: program.root,
            ctx: write::Context::new(py)?,
        })
    }

    /// The body of `record`, or `None` where the writer refuses it.
    fn write<'py>(
        &self,
        py: Python<'py>,
        record: &Bound<'py, PyAny>,
    ) -> Option<Bound<'py, PyBytes>> {
        let mut writer = write::Writer::new(py, &self.ctx);
        writer.value(&self.root, record).ok()?;
        Some(PyBytes::new(py, &writer.out))
    }
}

#[pymodule]
mod tokenline_native {
    #[pymodule_export]
    use super::BatchDecoder;
    #[pymodule_export]
    use super::BodyWriter;
    #[pymodule_export]
    use super::CopyRows;
}
