//! Read one Avro body with a compiled [`Node`] tree into Python values, strictly.
//!
//! The values are those of tokenline.schemas' compiled Python reader: dicts for records and
//! maps, `str` for strings and enum symbols, `None` for null, `bool`, `int`, `uuid.UUID`,
//! aware UTC `datetime` for `timestamp-micros`, `decimal.Decimal` (the unscaled integer
//! with exponent `-scale`) for `decimal`. Bytes that are not the plain encoding of such
//! values are refused, never guessed at: truncation, varints over ten bytes or 64 bits, an
//! `int` outside 32 bits, a boolean byte other than 0 or 1, a union index that is not one
//! of the branches' single bytes, an enum index out of range, invalid UTF-8, a uuid not in
//! its 36-character form, a timestamp outside years 1 to 9999, a decimal wider than its
//! precision or 16 bytes.

use std::ffi::{c_char, c_int};
use std::fmt::{self, Write as _};
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyString, PyTuple};

use crate::schema::Node;

/// Why a body was refused. The caller reads a refused body with Python instead, which
/// either reads it (bytes the native reader is stricter about) or raises today's error.
pub(crate) enum Refusal {
    NotBytes,
    Header,
    UnknownFingerprint,
    Truncated(usize),
    Varint(usize),
    OutOfRange(&'static str, i64),
    Boolean(u8),
    UnionIndex(u8),
    EnumIndex(i64),
    Utf8(usize),
    Uuid(usize),
    Decimal(usize),
    Trailing(usize),
    Python(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBytes => write!(f, "not bytes"),
            Self::Header => write!(f, "not a single-object header (c3 01 + 8-byte fingerprint)"),
            Self::UnknownFingerprint => write!(f, "writer fingerprint not given to this decoder"),
            Self::Truncated(at) => write!(f, "truncated at byte {at}"),
            Self::Varint(at) => write!(f, "varint at byte {at} longer than 64 bits"),
            Self::OutOfRange(what, v) => write!(f, "{what} {v} out of range"),
            Self::Boolean(b) => write!(f, "boolean byte {b}"),
            Self::UnionIndex(b) => write!(f, "union index byte {b}"),
            Self::EnumIndex(i) => write!(f, "enum index {i}"),
            Self::Utf8(at) => write!(f, "invalid UTF-8 in the string at byte {at}"),
            Self::Uuid(at) => write!(f, "uuid at byte {at} not in 8-4-4-4-12 hex form"),
            Self::Decimal(at) => write!(f, "decimal at byte {at} wider than its precision"),
            Self::Trailing(n) => write!(f, "{n} trailing byte(s)"),
            Self::Python(e) => write!(f, "Python error: {e}"),
        }
    }
}

type Read<T> = Result<T, Refusal>;

/// Python objects the reader makes values with, looked up once per decoder.
pub(crate) struct Context {
    uuid_type: Py<PyAny>,
    uuid_new: ffi::newfunc,
    int_name: Py<PyString>,
    is_safe_name: Py<PyString>,
    safe_unknown: Py<PyAny>,
    datetime_type: Py<PyAny>,
    utc: Py<PyAny>,
    decimal_type: Py<PyAny>,
    empty: Py<PyTuple>,
}

// Earliest and latest microseconds since the epoch that a datetime holds (years 1 to 9999).
pub(crate) const MIN_MICROS: i64 = -62_135_596_800_000_000;
pub(crate) const MAX_MICROS: i64 = 253_402_300_799_999_999;
const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Context {
    pub(crate) fn new(py: Python<'_>) -> PyResult<Self> {
        let uuid = py.import("uuid")?;
        let uuid_type = uuid.getattr("UUID")?;
        // UUID's __new__ is object's; the reader sets the two slots as UUID.__init__ does.
        let new = unsafe {
            ffi::PyType_GetSlot(
                uuid_type.as_ptr().cast::<ffi::PyTypeObject>(),
                ffi::Py_tp_new,
            )
        };
        if new.is_null() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "uuid.UUID has no tp_new",
            ));
        }
        let uuid_new: ffi::newfunc = unsafe { std::mem::transmute(new) };
        let datetime = py.import("datetime")?;
        Ok(Self {
            uuid_type: uuid_type.unbind(),
            uuid_new,
            int_name: PyString::intern(py, "int").unbind(),
            is_safe_name: PyString::intern(py, "is_safe").unbind(),
            safe_unknown: uuid.getattr("SafeUUID")?.getattr("unknown")?.unbind(),
            datetime_type: datetime.getattr("datetime")?.unbind(),
            utc: datetime.getattr("UTC")?.unbind(),
            decimal_type: py.import("decimal")?.getattr("Decimal")?.unbind(),
            empty: PyTuple::empty(py).unbind(),
        })
    }
}

/// How many timestamp and string fields (map keys included) a decoder's schemas have.
#[derive(Clone, Copy)]
pub(crate) struct Caches {
    pub(crate) timestamps: usize,
    pub(crate) strings: usize,
}

/// Strings up to this many bytes are kept for the next record.
const CACHED_STRING: usize = 40;

/// The last short string a field read: its bytes and the `str` made of them.
struct CachedString<'py> {
    len: usize,
    bytes: [u8; CACHED_STRING],
    value: Bound<'py, PyAny>,
}

/// Reads bodies one after the other. Keeps, per timestamp field and per string field, the
/// last value it made, and gives it again (immutable, equal) when the next record holds the
/// same: a batch often repeats one, such as the processor's `priced_at`, the currency, the
/// pricing version, a host's fields.
pub(crate) struct Reader<'a, 'py> {
    py: Python<'py>,
    ctx: &'a Context,
    timestamps: Vec<Option<(i64, Bound<'py, PyAny>)>>,
    strings: Vec<Option<CachedString<'py>>>,
    /// The last decimal made per slot (the string slots' numbering), for `decimal_cached`.
    decimals: Vec<Option<(i128, i32, Bound<'py, PyAny>)>>,
}

/// The bytes of one message and the position in them.
pub(crate) struct Cursor<'d> {
    pub(crate) data: &'d [u8],
    pub(crate) pos: usize,
}

fn python_error(py: Python<'_>) -> Refusal {
    Refusal::Python(PyErr::take(py).map_or_else(|| "unknown".into(), |e| e.to_string()))
}

fn owned<'py>(py: Python<'py>, ptr: *mut ffi::PyObject) -> Read<Bound<'py, PyAny>> {
    unsafe { Bound::from_owned_ptr_or_opt(py, ptr) }.ok_or_else(|| python_error(py))
}

impl<'d> Cursor<'d> {
    #[inline]
    pub(crate) fn byte(&mut self) -> Read<u8> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(Refusal::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    /// A zig-zag varint of at most ten bytes and 64 bits.
    #[inline]
    pub(crate) fn long(&mut self) -> Read<i64> {
        let start = self.pos;
        let mut b = self.byte()?;
        let mut n = u64::from(b & 0x7F);
        let mut shift = 7;
        while b & 0x80 != 0 {
            b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(Refusal::Varint(start));
            }
            n |= u64::from(b & 0x7F) << shift;
            shift += 7;
        }
        Ok((n >> 1) as i64 ^ -((n & 1) as i64))
    }

    /// The entry count of the next block of a map: 0 at its end. A negative count is
    /// followed by the block's size in bytes (read and not needed); every entry takes a byte
    /// at least (its key's length), so a count beyond the bytes left is truncated.
    pub(crate) fn block(&mut self) -> Read<i64> {
        let at = self.pos;
        let mut count = self.long()?;
        if count < 0 {
            count = count
                .checked_neg()
                .ok_or(Refusal::OutOfRange("map block count", count))?;
            self.long()?;
        }
        if count > (self.data.len() - self.pos) as i64 {
            return Err(Refusal::Truncated(at));
        }
        Ok(count)
    }

    /// A length-prefixed run of bytes.
    #[inline]
    pub(crate) fn slice(&mut self) -> Read<&'d [u8]> {
        let at = self.pos;
        let n = self.long()?;
        let start = self.pos;
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= self.data.len())
            .ok_or(Refusal::Truncated(at))?;
        self.pos = end;
        Ok(&self.data[start..end])
    }
}

impl<'a, 'py> Reader<'a, 'py> {
    pub(crate) fn py(&self) -> Python<'py> {
        self.py
    }

    pub(crate) fn new(py: Python<'py>, ctx: &'a Context, caches: Caches) -> Self {
        Self {
            py,
            ctx,
            timestamps: (0..caches.timestamps).map(|_| None).collect(),
            strings: (0..caches.strings).map(|_| None).collect(),
            decimals: (0..caches.strings).map(|_| None).collect(),
        }
    }

    /// Read the whole of `data[pos..]` as one value of `node`.
    pub(crate) fn read(&mut self, node: &Node, data: &[u8], pos: usize) -> Read<Bound<'py, PyAny>> {
        let mut c = Cursor { data, pos };
        let value = self.value(&mut c, node)?;
        if c.pos != data.len() {
            return Err(Refusal::Trailing(data.len() - c.pos));
        }
        Ok(value)
    }

    fn string(&mut self, c: &mut Cursor<'_>, slot: usize) -> Read<Bound<'py, PyAny>> {
        let at = c.pos;
        let raw = c.slice()?;
        self.string_value(raw, slot, at)
    }

    /// The `str` of the UTF-8 `raw` (read at byte `at`), given again while cache `slot`
    /// holds the same bytes.
    pub(crate) fn string_value(
        &mut self,
        raw: &[u8],
        slot: usize,
        at: usize,
    ) -> Read<Bound<'py, PyAny>> {
        if let Some(cached) = &self.strings[slot] {
            if cached.bytes[..cached.len] == *raw {
                return Ok(cached.value.clone());
            }
        }
        let ptr = unsafe {
            ffi::PyUnicode_DecodeUTF8(
                raw.as_ptr().cast::<c_char>(),
                raw.len() as ffi::Py_ssize_t,
                ptr::null(),
            )
        };
        let value = unsafe { Bound::from_owned_ptr_or_opt(self.py, ptr) }.ok_or_else(|| {
            drop(PyErr::take(self.py));
            Refusal::Utf8(at)
        })?;
        if raw.len() <= CACHED_STRING {
            let mut bytes = [0; CACHED_STRING];
            bytes[..raw.len()].copy_from_slice(raw);
            self.strings[slot] = Some(CachedString {
                len: raw.len(),
                bytes,
                value: value.clone(),
            });
        }
        Ok(value)
    }

    fn value(&mut self, c: &mut Cursor<'_>, node: &Node) -> Read<Bound<'py, PyAny>> {
        let py = self.py;
        match node {
            Node::Null => Ok(py.None().into_bound(py)),
            Node::Boolean => match c.byte()? {
                0 => Ok(PyBool::new(py, false).to_owned().into_any()),
                1 => Ok(PyBool::new(py, true).to_owned().into_any()),
                b => Err(Refusal::Boolean(b)),
            },
            Node::Int => {
                let v = c.long()?;
                if i32::try_from(v).is_err() {
                    return Err(Refusal::OutOfRange("int", v));
                }
                owned(py, unsafe { ffi::PyLong_FromLongLong(v) })
            }
            Node::Long => {
                let v = c.long()?;
                owned(py, unsafe { ffi::PyLong_FromLongLong(v) })
            }
            Node::Timestamp(slot) => {
                let v = c.long()?;
                self.timestamp(*slot, v)
            }
            Node::String(slot) => self.string(c, *slot),
            Node::Uuid => self.uuid(c),
            Node::Bytes => {
                let raw = c.slice()?;
                Ok(PyBytes::new(py, raw).into_any())
            }
            Node::Decimal { limit, exponent } => self.decimal(c, *limit, *exponent),
            Node::Enum(symbols) => {
                let i = c.long()?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .map(|s| s.bind(py).clone().into_any())
                    .ok_or(Refusal::EnumIndex(i))
            }
            Node::Union(branches) => {
                let b = c.byte()?;
                let branch = if b & 1 == 0 {
                    branches.get(usize::from(b >> 1))
                } else {
                    None
                };
                self.value(c, branch.ok_or(Refusal::UnionIndex(b))?)
            }
            Node::Map(values, keys) => self.map(c, values, *keys),
            Node::Record { fields, template } => {
                let dict = owned(py, unsafe { ffi::PyDict_Copy(template.as_ptr()) })?;
                for (name, field) in fields {
                    let value = self.value(c, field)?;
                    set(&dict, name.bind(py), &value)?;
                }
                untrack(&dict);
                Ok(dict)
            }
        }
    }

    /// Blocks of entries until a zero count; a negative count is followed by the block's
    /// size in bytes (read and not needed). A key seen twice keeps its last value.
    fn map(&mut self, c: &mut Cursor<'_>, values: &Node, keys: usize) -> Read<Bound<'py, PyAny>> {
        let dict = PyDict::new(self.py);
        loop {
            let count = c.block()?;
            if count == 0 {
                return Ok(dict.into_any());
            }
            for _ in 0..count {
                let key = self.string(c, keys)?;
                let value = self.value(c, values)?;
                set(dict.as_any(), &key, &value)?;
            }
        }
    }

    pub(crate) fn timestamp(&mut self, slot: usize, micros: i64) -> Read<Bound<'py, PyAny>> {
        if let Some((last, value)) = &self.timestamps[slot] {
            if *last == micros {
                return Ok(value.clone());
            }
        }
        if !(MIN_MICROS..=MAX_MICROS).contains(&micros) {
            return Err(Refusal::OutOfRange("timestamp-micros", micros));
        }
        let (y, m, d) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
        let of_day = micros.rem_euclid(MICROS_PER_DAY);
        let seconds = of_day / 1_000_000;
        let args = (
            y,
            m,
            d,
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            of_day % 1_000_000,
            self.ctx.utc.bind(self.py),
        );
        let value = self
            .ctx
            .datetime_type
            .bind(self.py)
            .call1(args)
            .map_err(|e| Refusal::Python(e.to_string()))?;
        self.timestamps[slot] = Some((micros, value.clone()));
        Ok(value)
    }

    /// Only the canonical 36-character form (either case): anything else is left to
    /// `uuid.UUID`, which takes more forms than the writer makes.
    fn uuid(&mut self, c: &mut Cursor<'_>) -> Read<Bound<'py, PyAny>> {
        let at = c.pos;
        let raw = c.slice()?;
        let hex = uuid_hex(raw).ok_or(Refusal::Uuid(at))?;
        self.uuid_value(&hex)
    }

    /// A `uuid.UUID` of the 32 hex digits in `hex` (NUL-terminated).
    pub(crate) fn uuid_value(&mut self, hex: &[u8; 33]) -> Read<Bound<'py, PyAny>> {
        let py = self.py;
        let ctx = self.ctx;
        let int = owned(py, unsafe {
            ffi::PyLong_FromString(hex.as_ptr().cast::<c_char>(), ptr::null_mut(), 16)
        })?;
        let uuid = owned(py, unsafe {
            (ctx.uuid_new)(
                ctx.uuid_type.as_ptr().cast::<ffi::PyTypeObject>(),
                ctx.empty.as_ptr(),
                ptr::null_mut(),
            )
        })?;
        for (name, value) in [
            (&ctx.int_name, int.as_ptr()),
            (&ctx.is_safe_name, ctx.safe_unknown.as_ptr()),
        ] {
            if unsafe { ffi::PyObject_GenericSetAttr(uuid.as_ptr(), name.as_ptr(), value) } != 0 {
                return Err(python_error(py));
            }
        }
        untrack(&uuid);
        Ok(uuid)
    }

    /// Big-endian two's complement, at most 16 bytes and `limit` in magnitude, made into
    /// `Decimal("<unscaled>E<exponent>")`: the digits and exponent the Python reader gives.
    fn decimal(
        &mut self,
        c: &mut Cursor<'_>,
        limit: Option<u128>,
        exponent: i32,
    ) -> Read<Bound<'py, PyAny>> {
        let at = c.pos;
        let raw = c.slice()?;
        let v = decimal_unscaled(raw, limit).ok_or(Refusal::Decimal(at))?;
        self.decimal_value(v, exponent, at)
    }

    /// `Decimal("<v>E<exponent>")`, given again (immutable, equal, the same exponent) while
    /// cache `slot` holds the same value: a batch repeats many, such as a zero cost.
    pub(crate) fn decimal_cached(
        &mut self,
        slot: usize,
        v: i128,
        exponent: i32,
    ) -> Read<Bound<'py, PyAny>> {
        if let Some((last, last_exponent, value)) = &self.decimals[slot] {
            if *last == v && *last_exponent == exponent {
                return Ok(value.clone());
            }
        }
        let value = self.decimal_value(v, exponent, 0)?;
        self.decimals[slot] = Some((v, exponent, value.clone()));
        Ok(value)
    }

    /// `Decimal("<v>E<exponent>")`.
    pub(crate) fn decimal_value(
        &mut self,
        v: i128,
        exponent: i32,
        at: usize,
    ) -> Read<Bound<'py, PyAny>> {
        let mut text = Text::default();
        write!(text, "{v}E{exponent}").map_err(|_| Refusal::Decimal(at))?;
        let text = PyString::new(self.py, text.as_str());
        self.ctx
            .decimal_type
            .bind(self.py)
            .call1((text,))
            .map_err(|e| Refusal::Python(e.to_string()))
    }
}

/// The 32 hex digits (NUL-terminated) of a uuid in its canonical 36-character form (either
/// case), or `None`: anything else is left to `uuid.UUID`, which takes more forms.
pub(crate) fn uuid_hex(raw: &[u8]) -> Option<[u8; 33]> {
    if raw.len() != 36 {
        return None;
    }
    let mut hex = [0u8; 33];
    let mut j = 0;
    for (i, &ch) in raw.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if ch != b'-' {
                return None;
            }
        } else if ch.is_ascii_hexdigit() {
            hex[j] = ch;
            j += 1;
        } else {
            return None;
        }
    }
    Some(hex)
}

/// The unscaled value of a decimal's bytes (big-endian two's complement, at most 16 bytes,
/// below `limit` in magnitude), or `None`.
pub(crate) fn decimal_unscaled(raw: &[u8], limit: Option<u128>) -> Option<i128> {
    if raw.len() > 16 {
        return None;
    }
    let mut v: i128 = if raw.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for &b in raw {
        v = (v << 8) | i128::from(b);
    }
    if limit.is_some_and(|limit| v.unsigned_abs() >= limit) {
        return None;
    }
    Some(v)
}

/// Take a value just made out of the cycle collector's sight. Only records and uuids are
/// (they are the only containers made here that it tracks), and neither is in a cycle:
/// each holds only values made here. Tracking comes back as for any dict: when a container
/// is put into it. Untracked, a batch's values cost the collector nothing.
#[inline]
pub(crate) fn untrack(value: &Bound<'_, PyAny>) {
    unsafe { ffi::PyObject_GC_UnTrack(value.as_ptr().cast()) };
}

#[inline]
fn set(dict: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> Read<()> {
    let status: c_int = unsafe { ffi::PyDict_SetItem(dict.as_ptr(), key.as_ptr(), value.as_ptr()) };
    if status == 0 {
        Ok(())
    } else {
        Err(python_error(dict.py()))
    }
}

/// Year, month, day of a day count from 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A small stack buffer for a decimal's text (at most 40 digits, a sign, an exponent).
struct Text {
    buf: [u8; 64],
    len: usize,
}

impl Default for Text {
    fn default() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl Text {
    fn as_str(&self) -> &str {
        // Only ASCII digits, '-' and 'E' are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
