//! Write one Python value as the Avro binary body of a compiled [`Node`] tree, strictly.
//!
//! The bytes are those of tokenline.schemas' compiled Python writer (and fastavro's). Only
//! values of the exact types that writer was made for are written: a record is a `dict`
//! holding every field, null is `None`, a boolean a `bool`, an int an `int` within 32 bits
//! and a long within 64, a string or enum symbol a `str` (a symbol of the enum; a uuid field takes its
//! `str` form), bytes are `bytes`, a timestamp-micros an aware `datetime`, a decimal a
//! `decimal.Decimal` that its scale holds exactly and within its precision, a map a `dict`
//! of `str` keys. Anything else is refused, never guessed at: the caller then writes the
//! value with Python, which writes it or raises the error it always raised.

use std::ffi::c_int;
use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyString};

use crate::schema::Node;

/// A value the native writer does not write; the caller writes it with Python.
pub(crate) struct Refused;

type Write<T> = Result<T, Refused>;

impl From<PyErr> for Refused {
    fn from(_: PyErr) -> Self {
        Refused
    }
}

/// Whether the writer covers every type of `node`; else what it does not cover.
pub(crate) fn check(node: &Node) -> Result<(), String> {
    match node {
        Node::Null
        | Node::Boolean
        | Node::Int
        | Node::Long
        | Node::Timestamp(_)
        | Node::String(_)
        | Node::Uuid
        | Node::Bytes
        | Node::Decimal { .. }
        | Node::Enum(_) => Ok(()),
        Node::Union(branches) => match null_branch(branches) {
            Some(null) => check(&branches[1 - null]),
            None => Err("a union other than of null and one type".into()),
        },
        Node::Map(values, _) => check(values),
        Node::Record { fields, .. } => fields.iter().try_for_each(|(_, node)| check(node)),
    }
}

/// The index of the null branch of a union of null and one other type.
fn null_branch(branches: &[Node]) -> Option<usize> {
    let nulls: Vec<usize> = (0..branches.len())
        .filter(|&i| matches!(branches[i], Node::Null))
        .collect();
    (branches.len() == 2 && nulls.len() == 1).then(|| nulls[0])
}

/// Python objects the writer compares and computes with, looked up once per writer.
pub(crate) struct Context {
    datetime_type: Py<PyAny>,
    decimal_type: Py<PyAny>,
    epoch: Py<PyAny>,
    days: Py<PyString>,
    seconds: Py<PyString>,
    microseconds: Py<PyString>,
    /// The last datetime written and its microseconds: a batch's records mostly share one
    /// `priced_at` object. Holding it keeps its address from being reused.
    last_timestamp: Mutex<Option<(Py<PyAny>, i64)>>,
}

impl Context {
    pub(crate) fn new(py: Python<'_>) -> PyResult<Self> {
        let datetime = py.import("datetime")?;
        let datetime_type = datetime.getattr("datetime")?;
        let utc = datetime.getattr("UTC")?;
        let epoch = datetime_type.call1((1970, 1, 1, 0, 0, 0, 0, utc))?;
        Ok(Self {
            datetime_type: datetime_type.unbind(),
            decimal_type: py.import("decimal")?.getattr("Decimal")?.unbind(),
            epoch: epoch.unbind(),
            days: PyString::intern(py, "days").unbind(),
            seconds: PyString::intern(py, "seconds").unbind(),
            microseconds: PyString::intern(py, "microseconds").unbind(),
            last_timestamp: Mutex::new(None),
        })
    }
}

/// Writes values into one buffer.
pub(crate) struct Writer<'a, 'py> {
    py: Python<'py>,
    ctx: &'a Context,
    pub(crate) out: Vec<u8>,
}

/// Appends the zig-zag varint of `n`.
#[inline]
fn long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z & !0x7F != 0 {
        out.push((z & 0x7F) as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// An `int` (not a `bool`) within 64 bits.
#[inline]
fn exact_i64(value: &Bound<'_, PyAny>) -> Option<i64> {
    if !value.is_exact_instance_of::<PyInt>() {
        return None;
    }
    let mut overflow: c_int = 0;
    let n = unsafe { ffi::PyLong_AsLongLongAndOverflow(value.as_ptr(), &mut overflow) };
    if overflow != 0 || (n == -1 && unsafe { !ffi::PyErr_Occurred().is_null() }) {
        drop(PyErr::take(value.py()));
        return None;
    }
    Some(n)
}

/// The UTF-8 of an exact `str`; `None` for anything else or a str with lone surrogates.
#[inline]
fn utf8<'v>(value: &'v Bound<'_, PyAny>) -> Option<&'v [u8]> {
    if !value.is_exact_instance_of::<PyString>() {
        return None;
    }
    let mut size: ffi::Py_ssize_t = 0;
    let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(value.as_ptr(), &mut size) };
    if data.is_null() {
        drop(PyErr::take(value.py()));
        return None;
    }
    // The buffer lives as long as the str, which `value` keeps alive.
    Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size as usize) })
}

/// `10**n`, if it fits.
fn power_of_ten(n: i64) -> Option<u128> {
    u32::try_from(n).ok().and_then(|n| 10u128.checked_pow(n))
}

/// The integer `value * 10**scale` of a decimal's text (`[-]digits[.digits][E[+|-]digits]`,
/// as `str(Decimal)` writes it), if it is one and fits in 128 bits; `None` for anything else
/// (NaN, infinities, a value finer than the scale, too many digits).
fn unscaled(text: &[u8], scale: i32) -> Option<i128> {
    let (negative, text) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'E' || b == b'e') {
        Some(at) => (&text[..at], exponent(&text[at + 1..])?),
        None => (text, 0),
    };
    let mut digits: u128 = 0;
    let mut count = 0;
    let mut fraction: Option<i64> = None;
    for &b in mantissa {
        match b {
            b'0'..=b'9' => {
                digits = digits.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
                count += 1;
                fraction = fraction.map(|f| f + 1);
            }
            b'.' if fraction.is_none() => fraction = Some(0),
            _ => return None,
        }
    }
    if count == 0 {
        return None;
    }
    if digits == 0 {
        return Some(0);
    }
    let shift = exponent.checked_sub(fraction.unwrap_or(0))? + i64::from(scale);
    let magnitude = if shift >= 0 {
        digits.checked_mul(power_of_ten(shift)?)?
    } else {
        // Exact only when the digits past the scale are zeros.
        let divisor = power_of_ten(-shift)?;
        if digits % divisor != 0 {
            return None;
        }
        digits / divisor
    };
    let magnitude = i128::try_from(magnitude).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// A decimal text's exponent: an optional sign and at most nine digits.
fn exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some(if negative { -n } else { n })
}

impl<'a, 'py> Writer<'a, 'py> {
    pub(crate) fn new(py: Python<'py>, ctx: &'a Context) -> Self {
        Self {
            py,
            ctx,
            out: Vec::with_capacity(256),
        }
    }

    #[inline]
    fn bytes(&mut self, raw: &[u8]) {
        long(&mut self.out, raw.len() as i64);
        self.out.extend_from_slice(raw);
    }

    pub(crate) fn value(&mut self, node: &Node, value: &Bound<'py, PyAny>) -> Write<()> {
        match node {
            Node::Null => {
                if !value.is_none() {
                    return Err(Refused);
                }
            }
            Node::Boolean => {
                let b = value.cast_exact::<PyBool>().map_err(|_| Refused)?;
                self.out.push(u8::from(b.is_true()));
            }
            Node::Int => {
                let n = exact_i64(value).filter(|n| i32::try_from(*n).is_ok());
                long(&mut self.out, n.ok_or(Refused)?);
            }
            Node::Long => long(&mut self.out, exact_i64(value).ok_or(Refused)?),
            Node::Timestamp(_) => {
                let micros = self.micros(value)?;
                long(&mut self.out, micros);
            }
            Node::String(_) | Node::Uuid => self.bytes(utf8(value).ok_or(Refused)?),
            Node::Bytes => {
                let raw = value.cast_exact::<PyBytes>().map_err(|_| Refused)?;
                self.bytes(raw.as_bytes());
            }
            Node::Decimal { limit, exponent } => self.decimal(value, *limit, -*exponent)?,
            Node::Enum(symbols) => {
                let raw = utf8(value).ok_or(Refused)?;
                let index = symbols
                    .iter()
                    .position(|s| {
                        s.as_ptr() == value.as_ptr() || utf8(s.bind(self.py).as_any()) == Some(raw)
                    })
                    .ok_or(Refused)?;
                long(&mut self.out, index as i64);
            }
            Node::Union(branches) => {
                let null = null_branch(branches).ok_or(Refused)?;
                if value.is_none() {
                    long(&mut self.out, null as i64);
                } else {
                    long(&mut self.out, (1 - null) as i64);
                    self.value(&branches[1 - null], value)?;
                }
            }
            Node::Map(values, _) => {
                let map = value.cast_exact::<PyDict>().map_err(|_| Refused)?;
                if !map.is_empty() {
                    long(&mut self.out, map.len() as i64);
                    for (key, item) in map.iter() {
                        self.bytes(utf8(&key).ok_or(Refused)?);
                        self.value(values, &item)?;
                    }
                }
                self.out.push(0);
            }
            Node::Record { fields, .. } => {
                let record = value.cast_exact::<PyDict>().map_err(|_| Refused)?;
                for (name, field) in fields {
                    let item = record.get_item(name.bind(self.py))?.ok_or(Refused)?;
                    self.value(field, &item)?;
                }
            }
        }
        Ok(())
    }

    /// Microseconds since the epoch of an aware `datetime`, as Python computes them from
    /// `value - EPOCH` (a naive one fails the subtraction).
    fn micros(&self, value: &Bound<'py, PyAny>) -> Write<i64> {
        let py = self.py;
        let ctx = self.ctx;
        // No lock is held while Python code runs (a tzinfo's utcoffset, a finalizer):
        // another thread writing meanwhile would wait for it holding the GIL.
        if let Ok(last) = ctx.last_timestamp.lock() {
            if let Some((object, micros)) = last.as_ref() {
                if object.as_ptr() == value.as_ptr() {
                    return Ok(*micros);
                }
            }
        }
        if !value.get_type().is(ctx.datetime_type.bind(py)) {
            return Err(Refused);
        }
        let delta = value.sub(ctx.epoch.bind(py))?;
        let part = |name: &Py<PyString>| -> Write<i64> {
            exact_i64(&delta.getattr(name.bind(py))?).ok_or(Refused)
        };
        // |days| < 10**9: no overflow.
        let micros = (part(&ctx.days)? * 86_400 + part(&ctx.seconds)?) * 1_000_000
            + part(&ctx.microseconds)?;
        let replaced = ctx
            .last_timestamp
            .lock()
            .map(|mut last| last.replace((value.clone().unbind(), micros)));
        drop(replaced); // the lock is released: the previous datetime may go now
        Ok(micros)
    }

    /// The length and minimal big-endian two's complement bytes of the unscaled value (the
    /// decimal's exact value times `10**scale`, an integer less than `limit` in magnitude).
    fn decimal(&mut self, value: &Bound<'py, PyAny>, limit: Option<u128>, scale: i32) -> Write<()> {
        if !value.get_type().is(self.ctx.decimal_type.bind(self.py)) {
            return Err(Refused);
        }
        // A Decimal's str is its exact value (C's `to-scientific-string`), and the quickest
        // way to it from outside: a third of `as_integer_ratio`'s time.
        let text = value.str()?;
        let unscaled = unscaled(utf8(text.as_any()).ok_or(Refused)?, scale).ok_or(Refused)?;
        let magnitude = unscaled.unsigned_abs();
        if limit.is_some_and(|limit| magnitude >= limit) {
            return Err(Refused);
        }
        // Python's `(bit_length + 8) // 8` bytes: a zero is the one byte 0.
        let size = (128 - magnitude.leading_zeros() as usize + 8) / 8;
        if size > 16 {
            return Err(Refused);
        }
        self.bytes(&unscaled.to_be_bytes()[16 - size..]);
        Ok(())
    }
}
