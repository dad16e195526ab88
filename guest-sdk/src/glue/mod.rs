//! Support for the code the attribute macros generate; not a public API (it is `#[doc(hidden)]`
//! and may change in any release).
//!
//! The macros emit, per UDF, one small exported function that calls an entry point of `wasm.rs`
//! with a closure. The closure decodes the parameters with the helpers below, calls the user's
//! function and converts its return value through the traits of [`crate::outcome`]. Everything
//! else (walking the batch, collecting output, turning failures into the message the host shows)
//! is ordinary generic code here, so it is unit-tested natively; only the frame access in `wasm.rs`
//! needs a wasm target. In a native build the same closure goes to the same-named entry point of
//! `native.rs` instead, behind a `NativeUdf` constant the host can call in-process.
//!
//! Failures carry where they happened (key or value, value index in a group) and the drivers add
//! the record or group index, so a message reads `split_words: value of record 17 is not valid
//! UTF-8`.

mod combine;
mod input;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;
mod resident;
#[cfg(target_arch = "wasm32")]
mod wasm;

use std::cell::Cell;
use std::fmt::{self, Display};

pub use weft_abi::native::{CombineState, Input as NativeInput, NativeUdf, Output as NativeOutput};
pub use weft_abi::{Frame, UdfKind};

pub use self::combine::{Combiner, Fold, Folder, Pending, ResidentFold, Results};
pub use self::input::{BinaryArray, Group, Groups, Records};
#[cfg(target_arch = "wasm32")]
pub use self::wasm::{combine, filter, flat_map, group_reduce, map, reduce};

use crate::codec::{Decode, DecodeError, Encode};
use crate::emitter::Emitter;
use crate::outcome::{IntoFilterOutput, IntoMapOutput, IntoReduceOutput, IntoUnitResult};

/// Why processing one record or group failed, before the driver says which one.
#[derive(Debug)]
pub struct Failure(FailureKind);

#[derive(Debug)]
enum FailureKind {
    Key(Preview, DecodeError),
    RecordValue(Preview, DecodeError),
    /// The value a combiner holds for the record's key (a result of the UDF itself).
    Combined(Preview, DecodeError),
    /// Value `index` of the current group (counted within the group).
    GroupValue {
        index: usize,
        preview: Preview,
        error: DecodeError,
    },
    /// The UDF returned an error; its `Display` output.
    User(String),
    /// The input does not follow the ABI: a host bug, reported rather than trusted.
    Abi(&'static str),
}

impl Failure {
    pub(crate) fn key(bytes: &[u8], error: DecodeError) -> Self {
        Failure(FailureKind::Key(Preview::of(bytes), error))
    }

    pub(crate) fn group_value(index: usize, bytes: &[u8], error: DecodeError) -> Self {
        Failure(FailureKind::GroupValue {
            index,
            preview: Preview::of(bytes),
            error,
        })
    }

    pub(crate) fn abi(message: &'static str) -> Self {
        Failure(FailureKind::Abi(message))
    }

    fn user(error: impl Display) -> Self {
        Failure(FailureKind::User(error.to_string()))
    }

    fn at(self, unit: Unit) -> CallError {
        CallError {
            unit: Some(unit),
            failure: self,
        }
    }

    /// The failure without its record or group, for [`Values`](crate::Values) built natively.
    pub(crate) fn describe_value(&self) -> String {
        match &self.0 {
            FailureKind::GroupValue {
                index,
                preview,
                error,
            } => format!("value {index} ({preview}) {error}"),
            other => format!("{other:?}"),
        }
    }
}

impl From<Failure> for CallError {
    /// A failure that concerns the whole call (reading the frame).
    fn from(failure: Failure) -> Self {
        CallError {
            unit: None,
            failure,
        }
    }
}

/// The start of a key or value that failed to decode, quoted for the message, so the user sees
/// which data was bad: at most 40 bytes, as a quoted string when it is UTF-8 and with `\xNN`
/// escapes when not, `...` when cut.
#[derive(Debug)]
struct Preview(String);

impl Preview {
    const MAX: usize = 40;

    fn of(bytes: &[u8]) -> Preview {
        let cut = bytes.len() > Self::MAX;
        let head = &bytes[..bytes.len().min(Self::MAX)];
        // A cut may split a UTF-8 character: keep the valid prefix readable.
        let quoted = match std::str::from_utf8(head) {
            Ok(text) => format!("{text:?}"),
            Err(e) if cut && e.error_len().is_none() => {
                format!(
                    "{:?}",
                    std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
                )
            }
            Err(_) => format!("\"{}\"", head.escape_ascii()),
        };
        Preview(format!("{quoted}{}", if cut { "..." } else { "" }))
    }
}

impl Display for Preview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The record or group a failure happened in.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Record(usize),
    Group(usize),
}

impl Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unit::Record(i) => write!(f, "record {i}"),
            Unit::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// A failed call: the failure and where it happened. [`CallError::display`] makes the message.
#[derive(Debug)]
pub struct CallError {
    unit: Option<Unit>,
    failure: Failure,
}

impl CallError {
    /// The message for the user, naming the UDF.
    pub fn display<'e>(&'e self, udf: &'e str) -> impl Display + 'e {
        fmt::from_fn(move |f| {
            write!(f, "{udf}: ")?;
            match (&self.failure.0, self.unit) {
                (FailureKind::Key(p, e), Some(unit)) => write!(f, "key of {unit} ({p}) {e}"),
                (FailureKind::RecordValue(p, e), Some(unit)) => {
                    write!(f, "value of {unit} ({p}) {e}")
                }
                (FailureKind::Combined(p, e), Some(unit)) => {
                    write!(
                        f,
                        "the value combined so far for the key of {unit} ({p}) {e}"
                    )
                }
                (
                    FailureKind::GroupValue {
                        index,
                        preview,
                        error,
                    },
                    Some(unit),
                ) => write!(f, "value {index} of {unit} ({preview}) {error}"),
                (FailureKind::User(message), Some(unit)) => write!(f, "{unit}: {message}"),
                (FailureKind::Abi(message), Some(unit)) => {
                    write!(f, "the input breaks the guest ABI at {unit}: {message}")
                }
                (FailureKind::Abi(message), None) => {
                    write!(f, "the input breaks the guest ABI: {message}")
                }
                // Only ABI failures concern a whole call; keep any other readable all the same.
                (kind, None) => write!(f, "{kind:?}"),
            }
        })
    }
}

/// Where [`Values`](crate::Values) built by the glue put the first value that failed to decode, for
/// the glue to report after the UDF returns.
#[derive(Default)]
pub struct ValueSlot(Cell<Option<Failure>>);

impl fmt::Debug for ValueSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Cell` shows its content only when it is `Copy`; take it out and put it back instead.
        let failure = self.0.take();
        let result = f.debug_tuple("ValueSlot").field(&failure).finish();
        self.0.set(failure);
        result
    }
}

impl ValueSlot {
    /// An empty slot.
    pub fn new() -> Self {
        ValueSlot(Cell::new(None))
    }

    pub(crate) fn record(&self, failure: Failure) {
        let first = self.0.take().unwrap_or(failure);
        self.0.set(Some(first));
    }

    /// Fails with the recorded failure, if any.
    pub fn check(&self) -> Result<(), Failure> {
        self.0.take().map_or(Ok(()), Err)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers called from generated closures. Each takes the user's types by inference from the call
// of the user's function, and the macros give each call the span of the parameter or return type it
// serves, so an unsupported type is reported there.

/// Decodes the key of a record or group.
pub fn decode_key<'a, T: Decode<'a>>(bytes: &'a [u8]) -> Result<T, Failure> {
    T::decode(bytes).map_err(|e| Failure::key(bytes, e))
}

/// Decodes the value of a record.
pub fn decode_value<'a, T: Decode<'a>>(bytes: &'a [u8]) -> Result<T, Failure> {
    T::decode(bytes).map_err(|e| Failure(FailureKind::RecordValue(Preview::of(bytes), e)))
}

/// Decodes the value a combiner holds for a key: an earlier result of the same `reduce`.
pub fn decode_combined<'a, T: Decode<'a>>(bytes: &'a [u8]) -> Result<T, Failure> {
    T::decode(bytes).map_err(|e| Failure(FailureKind::Combined(Preview::of(bytes), e)))
}

/// The failure of a combiner key without values, which the combiner never passes.
pub fn no_values() -> Failure {
    Failure::abi("a combiner key has no values")
}

/// Emits the record a `map` UDF returned.
pub fn emit_map_output<R: IntoMapOutput>(output: R, out: &mut Emitter) -> Result<(), Failure> {
    let (key, value) = output.into_map_output().map_err(Failure::user)?;
    out.emit(key, value);
    Ok(())
}

/// Passes the emitter to a UDF; a separate call so that a wrong `out` parameter type is reported
/// at that parameter.
pub fn emitter(out: &mut Emitter) -> &mut Emitter {
    out
}

/// What a `filter` UDF returned.
pub fn filter_output<R: IntoFilterOutput>(output: R) -> Result<bool, Failure> {
    output.into_filter_output().map_err(Failure::user)
}

/// What a `flat_map` or `group_reduce` UDF returned.
pub fn unit_output<R: IntoUnitResult>(output: R) -> Result<(), Failure> {
    output.into_unit_result().map_err(Failure::user)
}

/// What a `reduce` UDF returned.
pub fn reduce_output<R: IntoReduceOutput>(output: R) -> Result<R::Value, Failure> {
    output.into_reduce_output().map_err(Failure::user)
}

/// What makes a `reduce` whose value parameters and result differ fail to compile with a message
/// that says so (the result is folded with the next value, so both values are of the type
/// returned), rather than with the type mismatches this makes in the generated glue. Two
/// implementations, so that the compiler checks both instead of equating the types.
#[diagnostic::on_unimplemented(
    message = "a #[reduce] UDF must return the type of its values: `{Self}` is not `{V}`",
    label = "a value of type `{V}`, where the UDF returns `{Self}`",
    note = "a reduce's result is folded with the next value, so it is `fn(a: V, b: V) -> V` or \
            `-> Result<V, E>`; for bytes or text take owned `Vec<u8>` or `String`, not `&[u8]` \
            or `&str`"
)]
pub trait ReduceOf<V> {}

impl<V> ReduceOf<V> for V {}

impl<V, E> ReduceOf<V> for Result<V, E> {}

/// Type-checks a `reduce` of two values; never called.
pub fn check_reduce<A, B, R, F>(_: F)
where
    F: FnOnce(A, B) -> R,
    R: ReduceOf<A> + ReduceOf<B>,
{
}

/// Type-checks a `reduce` of a key and two values; never called.
pub fn check_keyed_reduce<K, A, B, R, F>(_: F)
where
    F: FnOnce(K, A, B) -> R,
    R: ReduceOf<A> + ReduceOf<B>,
{
}

/// Checks at compile time that the export name a macro wrote is `weft_<kind>_<name>` as `weft-abi`
/// spells it: the macros crate cannot depend on `weft-abi`, so this keeps the two from drifting.
pub const fn check_export_name(kind: UdfKind, name: &str, export: &str) {
    let parts = [weft_abi::EXPORT_PREFIX, kind.as_str(), "_", name];
    let export = export.as_bytes();
    let mut at = 0;
    let mut p = 0;
    while p < parts.len() {
        let part = parts[p].as_bytes();
        let mut i = 0;
        while i < part.len() {
            assert!(
                at < export.len() && export[at] == part[i],
                "export name does not match weft-abi"
            );
            at += 1;
            i += 1;
        }
        p += 1;
    }
    assert!(at == export.len(), "export name does not match weft-abi");
}

// ---------------------------------------------------------------------------------------------
// Drivers: one batch in, output buffers filled. `f` is the generated per-record (or per-group)
// closure. Both `wasm.rs` and `native.rs` call them.

/// `map` and `flat_map`: calls `f` for every record; `f` emits into `out`.
pub fn run_records<'a, F>(input: &Records<'a>, out: &mut Emitter, mut f: F) -> Result<(), CallError>
where
    F: FnMut(&'a [u8], &'a [u8], &mut Emitter) -> Result<(), Failure>,
{
    for i in 0..input.count() {
        let at = |failure: Failure| failure.at(Unit::Record(i));
        let (key, value) = input.get(i).map_err(at)?;
        f(key, value, out).map_err(at)?;
    }
    Ok(())
}

/// `filter`: one keep byte per record.
pub fn run_filter<'a, F>(input: &Records<'a>, keep: &mut Vec<u8>, mut f: F) -> Result<(), CallError>
where
    F: FnMut(&'a [u8], &'a [u8]) -> Result<bool, Failure>,
{
    keep.reserve(input.count());
    for i in 0..input.count() {
        let at = |failure: Failure| failure.at(Unit::Record(i));
        let (key, value) = input.get(i).map_err(at)?;
        keep.push(u8::from(f(key, value).map_err(at)?));
    }
    Ok(())
}

/// `reduce`: one output value per group, in `out`'s values (its keys stay empty).
pub fn run_reduce<'a, V, F>(
    input: &Groups<'a>,
    out: &mut Emitter,
    mut f: F,
) -> Result<(), CallError>
where
    V: Encode,
    F: FnMut(Group<'a>) -> Result<V, Failure>,
{
    for g in 0..input.count() {
        let at = |failure: Failure| failure.at(Unit::Group(g));
        let group = input.get(g).map_err(at)?;
        out.values.push(f(group).map_err(at)?);
    }
    Ok(())
}

/// `group_reduce`: calls `f` for every group; `f` emits into `out`.
pub fn run_group_reduce<'a, F>(
    input: &Groups<'a>,
    out: &mut Emitter,
    mut f: F,
) -> Result<(), CallError>
where
    F: FnMut(Group<'a>, &mut Emitter) -> Result<(), Failure>,
{
    for g in 0..input.count() {
        let at = |failure: Failure| failure.at(Unit::Group(g));
        let group = input.get(g).map_err(at)?;
        f(group, out).map_err(at)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
