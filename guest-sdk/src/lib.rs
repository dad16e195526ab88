//! The Rust guest SDK of Weft: write user-defined functions as plain Rust functions, mark each with
//! an attribute, build the crate for `wasm32-wasip1`, and the `.wasm` is a module the Weft host
//! runs.
//!
//! # Brief overview
//! A Weft job pipes batches of key/value records through UDFs of five kinds. Each attribute turns a
//! function of the matching shape into one exported UDF of the module (`weft_<kind>_<name>`, see
//! the guest ABI, `guest-sdk/ABI.md`):
//!
//! | attribute | function | does |
//! |---|---|---|
//! | [`#[map]`](macro@map) | `fn(key: K, value: V) -> (K2, V2)` | one record in, one out |
//! | [`#[filter]`](macro@filter) | `fn(key: K, value: V) -> bool` | keeps the records for which it is `true` |
//! | [`#[flat_map]`](macro@flat_map) | `fn(key: K, value: V, out: &mut Emitter)` | one record in, any number out through the [`Emitter`] |
//! | [`#[reduce]`](macro@reduce) | `fn(a: V, b: V) -> V`, or `fn(key: K, a: V, b: V) -> V` | combines the values of a key, two at a time |
//! | [`#[group_reduce]`](macro@group_reduce) | `fn(key: K, values: Values<'_, V>, out: &mut Emitter)` | sees all values of a key at once |
//!
//! Every one may instead return `Result<_, E>` with `E: Display` to fail the call with a message
//! (see [Errors](#errors)). Parameter types say how keys and values are read and written: see
//! [Keys and values](#keys-and-values).
//!
//! The module also gets the exports the ABI requires of every guest (`weft_abi_version`,
//! `weft_alloc`, `weft_free`, and the WASI reactor's `_initialize`) from this crate, and nothing
//! else is needed: no `main`, no setup code.
//!
//! # Example
//! Word count, the whole module (it is `examples/wordcount/rust` in the Weft repository, with its
//! tests):
//!
//! ```
//! use weft_guest::{flat_map, reduce, Decimal, Emitter};
//!
//! /// Emits `(word, "1")` for each word of the line; the key (a line number) is ignored.
//! #[flat_map]
//! fn split_words(_line_number: (), line: &str, out: &mut Emitter) {
//!     for word in line.split_whitespace() {
//!         out.emit(word, b"1");
//!     }
//! }
//!
//! /// Adds two counts. Weft calls it in any order and grouping, and on its own results, so it
//! /// takes and returns the same type.
//! #[reduce]
//! fn sum(a: Decimal<u64>, b: Decimal<u64>) -> Result<Decimal<u64>, String> {
//!     a.0.checked_add(b.0).map(Decimal).ok_or_else(|| format!("{} + {} overflows", a.0, b.0))
//! }
//!
//! // The functions are still ordinary functions: test them natively with `cargo test`.
//! let mut out = Emitter::new();
//! split_words((), "to be or not to be", &mut out);
//! assert_eq!(out.len(), 6);
//! assert_eq!(out.get(0), Some((&b"to"[..], &b"1"[..])));
//! assert_eq!(sum(Decimal(2), Decimal(3)), Ok(Decimal(5)));
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip1`; the crate needs
//! `crate-type = ["cdylib", "rlib"]` (the `cdylib` is the module, the `rlib` lets the tests link).
//! The module then exports `weft_flat_map_split_words` and `weft_reduce_sum`, and a job names them
//! `wordcount/split_words` and `wordcount/sum`.
//!
//! # Keys and values
//! Keys and values are bytes. Each parameter is decoded with [`Decode`] and each output encoded
//! with [`Encode`]; the [`codec`] module lists the types that implement them: `&[u8]`, `&str`,
//! `Vec<u8>`, `String`, `()` (ignore the field), [`Decimal<T>`] (ASCII decimal integers), [`Le<T>`]
//! (little-endian binary numbers) and `Json<T>` (serde, feature `json`). Borrowed types (`&str`,
//! `&[u8]`) read the input in place, with no copy. Implement the traits for your own formats.
//!
//! # Errors
//! A UDF fails the call, and with it the task and the job, in three ways:
//! - **It returns `Err(e)`**: the message is `<udf>: record <i>: <e>` (or `group <g>` for the
//!   grouped kinds), where `i` counts records within the batch.
//! - **A key or value does not decode**: the glue reports it without calling the function, e.g.
//!   `split_words: value of record 17 is not valid UTF-8` or
//!   `sum: value 2 of group 5 is not a decimal integer`. A [`Values`] iterator stops at such a
//!   value and the error is reported after the function returns.
//! - **It panics**: a Rust panic in a module aborts, which is a wasm trap. The standard panic hook
//!   has already printed the message (`panicked at src/lib.rs:12:5: ...`) to stderr, and the host
//!   shows the trap with the tail of stderr. This SDK installs no hook of its own and catches
//!   nothing: a panic is a bug in the UDF, and its message and location are what you need.
//!
//! Weft does not retry a task that failed in any of these ways: the same input would fail again.
//!
//! # Naming
//! A UDF is exported under its function's name; `#[map(name = "other")]` picks another. Names are
//! ASCII letters, digits and `_`, and must be unique in the module across kinds. Misuse (a wrong
//! number of parameters, `self`, `async`, type parameters, an unknown argument, an invalid name) is
//! a compile error at the offending tokens: `tests/ui/` pins each message and span.
//!
//! # How it runs
//! The host calls an export once per batch (thousands of records), never per record. The glue reads
//! the batch in place from the host's buffers, calls the function for each record or group, and
//! builds the output in buffers the module keeps for its whole life: they are cleared between calls
//! but keep their memory, so in steady state a batch allocates nothing for its output. A module
//! instance serves many batches in a row; do not rely on state kept between calls.
//!
//! # Native builds
//! Built for any target but wasm32, each attribute also makes a hidden public constant next to the
//! function, `__WEFT_NATIVE_<function>` (a [`NativeUdf`](abi::native::NativeUdf)), that runs the
//! UDF on a batch with the same glue and the same error messages as the wasm export. The host can
//! load such constants as a module (`weft_host::GuestModule::native`) and run a job with the UDFs
//! compiled into its own process: that is how Weft measures what the sandbox costs, and tests
//! that both builds agree. List them with [`native_udfs!`]:
//!
//! ```
//! # mod wordcount {
//! #     use weft_guest::{flat_map, Emitter};
//! #     #[flat_map]
//! #     pub fn split_words(_key: (), line: &[u8], out: &mut Emitter) {
//! #         line.split(|&b| b == b' ').for_each(|w| out.emit(w, "1"));
//! #     }
//! # }
//! let udfs = weft_guest::native_udfs![wordcount::split_words];
//! assert_eq!((udfs[0].name, udfs[0].kind), ("split_words", weft_guest::abi::UdfKind::FlatMap));
//! ```
//!
//! Native UDFs are trusted code: no sandbox, no memory or time limit, a panic is the host's. They
//! are for measurement and testing; the wasm module is the product.
//!
//! # Layout
//! - [`codec`]: [`Decode`], [`Encode`] and the provided formats.
//! - [`Emitter`] and [`Values`]: the output and the grouped input of the UDFs that need them.
//! - [`outcome`]: the traits that accept `T` or `Result<T, E>` as a return type.
//! - Hidden: the runtime glue the attributes call (wasm exports, or native entry points), and the
//!   module-wide exports (wasm32 only).

// The attributes generate `::weft_guest::...` paths; this lets this crate's own tests use them.
#[cfg(test)]
extern crate self as weft_guest;

pub mod codec;
mod emitter;
#[cfg(target_arch = "wasm32")]
mod exports;
mod glue;
#[cfg(test)]
mod macro_tests;
pub mod outcome;
mod row;
mod values;

#[cfg(feature = "json")]
pub use crate::codec::Json;
pub use crate::codec::{Decimal, Decode, DecodeError, Encode, Le};
pub use crate::emitter::Emitter;
pub use crate::outcome::{IntoFilterOutput, IntoMapOutput, IntoReduceOutput, IntoUnitResult};
pub use crate::row::Row;
pub use crate::values::Values;
/// The guest ABI's constants (`weft_abi::ABI_VERSION`, ...), for guests that want to show them.
pub use weft_abi as abi;

/// Makes a `map` UDF: `fn(key: K, value: V) -> (K2, V2)`, or `-> Result<(K2, V2), E>` with
/// `E: Display`. Exactly one output record per input record, in order; key and value may change
/// type.
///
/// ```
/// use weft_guest::map;
///
/// /// Upper-cases the value; a value that is not UTF-8 fails the call.
/// #[map]
/// fn shout(key: &[u8], value: &str) -> (Vec<u8>, String) {
///     (key.to_vec(), value.to_uppercase())
/// }
///
/// /// Swaps key and value, exported as `weft_map_swap` rather than `weft_map_swap_fields`.
/// #[map(name = "swap")]
/// fn swap_fields<'a>(key: &'a [u8], value: &'a [u8]) -> (&'a [u8], &'a [u8]) {
///     (value, key)
/// }
///
/// assert_eq!(shout(b"k", "hi"), (b"k".to_vec(), "HI".to_string()));
/// assert_eq!(swap_fields(b"k", b"v"), (&b"v"[..], &b"k"[..]));
/// ```
pub use weft_guest_macros::map;

/// Makes a `filter` UDF: `fn(key: K, value: V) -> bool`, or `-> Result<bool, E>`; `true` keeps the
/// record (unchanged).
///
/// ```
/// use weft_guest::{filter, Decimal};
///
/// /// Keeps adults; a value that is not a decimal age fails the call.
/// #[filter]
/// fn adults(_name: (), age: Decimal<u8>) -> bool {
///     age.0 >= 18
/// }
///
/// assert!(adults((), Decimal(30)));
/// ```
pub use weft_guest_macros::filter;

/// Makes a `flat_map` UDF: `fn(key: K, value: V, out: &mut Emitter)`, returning `()` or
/// `Result<(), E>`. Any number of output records per input record, written with [`Emitter::emit`].
///
/// ```
/// use weft_guest::{flat_map, Emitter};
///
/// /// Emits `(field, line number)` for each comma-separated field of the line.
/// #[flat_map]
/// fn fields(line_number: &[u8], line: &[u8], out: &mut Emitter) -> Result<(), String> {
///     if line.is_empty() {
///         return Err("empty line".to_string());
///     }
///     for field in line.split(|&b| b == b',') {
///         out.emit(field, line_number);
///     }
///     Ok(())
/// }
///
/// let mut out = Emitter::new();
/// fields(b"7", b"a,b", &mut out).unwrap();
/// assert_eq!(out.to_records(), [(b"a".to_vec(), b"7".to_vec()), (b"b".to_vec(), b"7".to_vec())]);
/// ```
pub use weft_guest_macros::flat_map;

/// Makes a `reduce` UDF: `fn(a: V, b: V) -> V` (or `-> Result<V, E>`), optionally with a leading
/// `key: K` parameter. The glue folds each group's values left to right into one output value; a
/// group of one value outputs it decoded and re-encoded.
///
/// The host combines values in any order and grouping, and feeds results back in as inputs, so the
/// function must be associative and commutative, and its output must be a valid input: take and
/// return the same `V`, an owned type (`Decimal<u64>`, `String`, `Vec<u8>`, ...); values of another
/// type than the result (`a: &[u8]` with `-> Vec<u8>`, say) fail to compile with an error that says
/// so. The key, when taken, is decoded once per group and cloned for each step, so `K` must be
/// `Clone`.
///
/// The attribute also makes the UDF's combiner, `weft_combine_<name>` (ABI.md §3a): a map task
/// whose output feeds this reduce folds it inside the guest, record by record, keeping each key's
/// running value encoded in guest memory, so the map output never crosses into the host. For a
/// reduce of `Decimal` numbers without a key parameter (`fn(a: Decimal<T>, b: Decimal<T>) ->
/// Decimal<T>`, or `Result<Decimal<T>, E>`), the combiner holds each running value decoded, in its
/// slot of an open-addressing table, and folds a record in one pass (one probe, one decode, one call
/// of the function): word count's map side took about 20 % less time than through the general
/// combiner, which holds values as bytes so that any `V` works, borrowed ones included.
///
/// ```
/// use weft_guest::{reduce, Decimal};
///
/// #[reduce]
/// fn max(a: Decimal<u64>, b: Decimal<u64>) -> Decimal<u64> {
///     a.max(b)
/// }
///
/// /// Keeps the longer string; for the key `"first"`, the one that sorts first.
/// #[reduce]
/// fn pick(key: &str, a: String, b: String) -> String {
///     if key == "first" { a.min(b) } else if b.len() > a.len() { b } else { a }
/// }
///
/// assert_eq!(max(Decimal(3), Decimal(9)), Decimal(9));
/// assert_eq!(pick("first", "b".into(), "a".into()), "a");
/// ```
pub use weft_guest_macros::reduce;

/// Makes a `group_reduce` UDF: `fn(key: K, values: Values<'_, V>, out: &mut Emitter)`, returning
/// `()` or `Result<(), E>`. Called once per key with all of its values (in no particular order);
/// emits any number of records.
///
/// ```
/// use weft_guest::{group_reduce, Decimal, Emitter, Values};
///
/// /// Emits `(key, "min,max")` over the key's decimal values.
/// #[group_reduce]
/// fn range(key: &[u8], values: Values<'_, Decimal<i64>>, out: &mut Emitter) {
///     let (mut min, mut max) = (i64::MAX, i64::MIN);
///     for Decimal(v) in values {
///         (min, max) = (min.min(v), max.max(v));
///     }
///     out.emit(key, format!("{min},{max}"));
/// }
///
/// let mut out = Emitter::new();
/// range(b"k", Values::from_strs(&["5", "-2", "9"]), &mut out);
/// assert_eq!(out.to_records(), [(b"k".to_vec(), b"-2,9".to_vec())]);
/// ```
pub use weft_guest_macros::group_reduce;

/// The native constants of the named UDFs, as an array `[NativeUdf; N]`:
/// `native_udfs![my_crate::split_words, my_crate::sum]` is
/// `[my_crate::__WEFT_NATIVE_split_words, my_crate::__WEFT_NATIVE_sum]`. Name each UDF by the path
/// of its function (not its `name = "..."`). Native builds only: wasm32 builds have no such
/// constants. See [Native builds](crate#native-builds).
pub use weft_guest_macros::native_udfs;

#[doc(hidden)]
pub mod __private {
    //! What the code generated by the attributes calls; not a public API.
    pub use crate::glue::*;
}
