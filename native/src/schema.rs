//! Compile an Avro writer schema (as `json.loads` returns it) into a tree of [`Node`]s.
//!
//! Covered: records, enums, unions of up to 63 branches, maps, `null`, `boolean`, `int`,
//! `long`, `string`, `bytes`, and the logical types `uuid` (string), `timestamp-micros`
//! (long) and `decimal` (bytes). Anything else (arrays, fixed, floats, other logical types,
//! recursive types) is refused with a message: the caller then reads with Python.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

/// Branch indexes are one zig-zag byte each, as in the compiled Python reader.
const MAX_UNION_BRANCHES: usize = 63;
/// Deeper than any real schema: a recursive one stops here.
const MAX_DEPTH: usize = 32;

/// One type of the writer schema, ready to read.
pub(crate) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    /// `timestamp-micros`; the index of its one-entry cache (see `read::Reader`).
    Timestamp(usize),
    /// A string; the index of its one-entry cache.
    String(usize),
    Uuid,
    Bytes,
    /// `decimal` on bytes: the largest magnitude allowed (`10**precision`, `None` when any
    /// 128-bit value fits) and the exponent (`-scale`).
    Decimal {
        limit: Option<u128>,
        exponent: i32,
    },
    Enum(Vec<Py<PyString>>),
    Union(Vec<Node>),
    /// A map: its values, and the cache index of its keys.
    Map(Box<Node>, usize),
    /// The fields in order, and a dict of their names (all `None`) that each record copies:
    /// a copy is sized for every field at once.
    Record {
        fields: Vec<(Py<PyString>, Node)>,
        template: Py<PyDict>,
    },
}

/// The compiled schema and the number of timestamp caches its reader needs.
pub(crate) struct Program {
    pub(crate) root: Node,
    pub(crate) timestamps: usize,
    pub(crate) strings: usize,
}

pub(crate) fn compile(schema: &Bound<'_, PyAny>) -> Result<Program, String> {
    let mut compiler = Compiler {
        named: HashMap::new(),
        timestamps: 0,
        strings: 0,
        depth: 0,
    };
    let root = compiler.node(schema, "")?;
    Ok(Program {
        root,
        timestamps: compiler.timestamps,
        strings: compiler.strings,
    })
}

struct Compiler<'py> {
    /// Named types seen so far, by full name, as their JSON definitions.
    named: HashMap<String, Bound<'py, PyAny>>,
    timestamps: usize,
    strings: usize,
    depth: usize,
}

fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}.{name}")
    }
}

fn namespace_of(full: &str) -> &str {
    full.rsplit_once('.').map_or("", |(ns, _)| ns)
}

fn text(value: &Bound<'_, PyAny>, what: &str) -> Result<String, String> {
    value
        .extract::<String>()
        .map_err(|_| format!("{what} is not a string"))
}

fn get<'py>(schema: &Bound<'py, PyDict>, key: &str) -> Result<Option<Bound<'py, PyAny>>, String> {
    schema.get_item(key).map_err(|e| e.to_string())
}

fn require<'py>(schema: &Bound<'py, PyDict>, key: &str) -> Result<Bound<'py, PyAny>, String> {
    get(schema, key)?.ok_or_else(|| format!("no {key:?} in {schema}"))
}

impl<'py> Compiler<'py> {
    fn node(&mut self, schema: &Bound<'py, PyAny>, namespace: &str) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("schema nested too deep (recursive types are not covered)".into());
        }
        let node = self.node_inner(schema, namespace);
        self.depth -= 1;
        node
    }

    fn node_inner(&mut self, schema: &Bound<'py, PyAny>, namespace: &str) -> Result<Node, String> {
        if let Ok(name) = schema.cast::<PyString>() {
            return self.named_or_primitive(&name.to_string(), namespace);
        }
        if let Ok(branches) = schema.cast::<PyList>() {
            return self.union(branches, namespace);
        }
        let Ok(schema) = schema.cast::<PyDict>() else {
            return Err(format!("not a schema: {schema}"));
        };
        let kind = require(schema, "type")?;
        if !kind.is_instance_of::<PyString>() {
            // {"type": {...}} or {"type": [...]}: the inner schema, nothing added.
            if get(schema, "logicalType")?.is_some() {
                return Err("a logical type on a complex type".into());
            }
            return self.node(&kind, namespace);
        }
        let kind = kind.to_string();
        let logical = match get(schema, "logicalType")? {
            Some(value) => Some(text(&value, "logicalType")?),
            None => None,
        };
        match (kind.as_str(), logical.as_deref()) {
            ("record" | "error", None) => self.record(schema, namespace),
            ("enum", None) => self.enumeration(schema, namespace),
            ("map", None) => {
                let values = self.node(&require(schema, "values")?, namespace)?;
                Ok(Node::Map(Box::new(values), self.string_slot()))
            }
            ("long", Some("timestamp-micros")) => {
                self.timestamps += 1;
                Ok(Node::Timestamp(self.timestamps - 1))
            }
            ("string", Some("uuid")) => Ok(Node::Uuid),
            ("bytes", Some("decimal")) => decimal(schema),
            (_, Some(other)) => Err(format!("logical type {other:?} on {kind:?}")),
            (_, None) => self.named_or_primitive(&kind, namespace),
        }
    }

    fn string_slot(&mut self) -> usize {
        self.strings += 1;
        self.strings - 1
    }

    fn named_or_primitive(&mut self, name: &str, namespace: &str) -> Result<Node, String> {
        Ok(match name {
            "null" => Node::Null,
            "boolean" => Node::Boolean,
            "int" => Node::Int,
            "long" => Node::Long,
            "string" => Node::String(self.string_slot()),
            "bytes" => Node::Bytes,
            "float" | "double" | "array" | "fixed" => return Err(format!("type {name:?}")),
            _ => {
                let full = full_name(name, namespace);
                let definition = self
                    .named
                    .get(&full)
                    .or_else(|| self.named.get(name))
                    .cloned()
                    .ok_or_else(|| format!("unknown type {name:?}"))?;
                return self.node(&definition, namespace_of(&full));
            }
        })
    }

    fn define(&mut self, schema: &Bound<'py, PyDict>, namespace: &str) -> Result<String, String> {
        let name = text(&require(schema, "name")?, "name")?;
        let namespace = match get(schema, "namespace")? {
            Some(ns) if !name.contains('.') => text(&ns, "namespace")?,
            _ => namespace.to_owned(),
        };
        let full = full_name(&name, &namespace);
        self.named.insert(full.clone(), schema.clone().into_any());
        Ok(full)
    }

    fn record(&mut self, schema: &Bound<'py, PyDict>, namespace: &str) -> Result<Node, String> {
        let full = self.define(schema, namespace)?;
        let inner = namespace_of(&full).to_owned();
        let fields = require(schema, "fields")?;
        let fields = fields
            .cast::<PyList>()
            .map_err(|_| format!("fields of {full} are not a list"))?;
        let py = schema.py();
        let template = PyDict::new(py);
        let mut out = Vec::with_capacity(fields.len());
        for field in fields.iter() {
            let field = field
                .cast::<PyDict>()
                .map_err(|_| format!("a field of {full} is not an object"))?;
            let name = PyString::intern(py, &text(&require(field, "name")?, "field name")?);
            if template.contains(&name).map_err(|e| e.to_string())? {
                return Err(format!("field {name} of {full} appears twice"));
            }
            template
                .set_item(&name, py.None())
                .map_err(|e| e.to_string())?;
            let node = self.node(&require(field, "type")?, &inner)?;
            out.push((name.unbind(), node));
        }
        Ok(Node::Record {
            fields: out,
            template: template.unbind(),
        })
    }

    fn enumeration(
        &mut self,
        schema: &Bound<'py, PyDict>,
        namespace: &str,
    ) -> Result<Node, String> {
        let full = self.define(schema, namespace)?;
        let symbols = require(schema, "symbols")?;
        let symbols = symbols
            .cast::<PyList>()
            .map_err(|_| format!("symbols of {full} are not a list"))?;
        let mut out = Vec::with_capacity(symbols.len());
        for symbol in symbols.iter() {
            let symbol = text(&symbol, "an enum symbol")?;
            out.push(PyString::intern(schema.py(), &symbol).unbind());
        }
        Ok(Node::Enum(out))
    }

    fn union(&mut self, branches: &Bound<'py, PyList>, namespace: &str) -> Result<Node, String> {
        if branches.is_empty() || branches.len() > MAX_UNION_BRANCHES {
            return Err(format!("a union of {} branches", branches.len()));
        }
        let mut out = Vec::with_capacity(branches.len());
        for branch in branches.iter() {
            out.push(self.node(&branch, namespace)?);
        }
        Ok(Node::Union(out))
    }
}

fn decimal(schema: &Bound<'_, PyDict>) -> Result<Node, String> {
    let precision: u32 = require(schema, "precision")?
        .extract()
        .map_err(|_| "decimal precision is not a positive integer".to_string())?;
    let scale: u32 = match get(schema, "scale")? {
        Some(scale) => scale
            .extract()
            .map_err(|_| "decimal scale is not a non-negative integer".to_string())?,
        None => 0,
    };
    let exponent = i32::try_from(scale).map(|scale| -scale);
    if precision == 0 || scale > precision || exponent.is_err() {
        return Err(format!("decimal({precision}, {scale})"));
    }
    // 10**38 still fits in u128; any wider precision admits every 128-bit value.
    let limit = if precision <= 38 {
        Some(10u128.pow(precision))
    } else {
        None
    };
    Ok(Node::Decimal {
        limit,
        exponent: exponent.unwrap_or(0),
    })
}
