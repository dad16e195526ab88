//! What the attributes refuse, each case a `compile_fail` test of this crate.
//!
//! The attributes report a mistake as a compile error pointing at the offending tokens; they never
//! panic. Shape mistakes are caught by the attribute itself; type mistakes by the compiler, through
//! the SDK's traits, in native builds as well as wasm ones (so `cargo test` catches them too).
//!
//! # Shape
//! Each kind takes a fixed number of parameters. Here a `map` is given the `out` parameter of a
//! `flat_map`:
//! ```compile_fail
//! #[weft_guest::map]
//! fn upper(key: &[u8], value: &str, out: &mut weft_guest::Emitter) -> (Vec<u8>, String) {
//!     (key.to_vec(), value.to_uppercase())
//! }
//! ```
//!
//! A UDF is a free function: the host cannot supply a `self`.
//! ```compile_fail
//! struct Counter;
//! impl Counter {
//!     #[weft_guest::filter]
//!     fn keep(&self, key: &[u8], value: &[u8]) -> bool {
//!         !value.is_empty()
//!     }
//! }
//! ```
//!
//! The host calls a UDF synchronously, once per batch: no `async`.
//! ```compile_fail
//! #[weft_guest::filter]
//! async fn keep(key: &[u8], value: &[u8]) -> bool {
//!     !value.is_empty()
//! }
//! ```
//!
//! The exported function needs concrete types, so no type (or const) parameters. Lifetime
//! parameters are fine.
//! ```compile_fail
//! #[weft_guest::map]
//! fn identity<T: AsRef<[u8]>>(key: T, value: T) -> (T, T) {
//!     (key, value)
//! }
//! ```
//!
//! `impl Trait` in a parameter is a type parameter in disguise.
//! ```compile_fail
//! #[weft_guest::filter]
//! fn keep(key: &[u8], value: impl AsRef<[u8]>) -> bool {
//!     !value.as_ref().is_empty()
//! }
//! ```
//!
//! The attributes apply to functions only.
//! ```compile_fail
//! #[weft_guest::map]
//! struct NotAFunction;
//! ```
//!
//! # Arguments and names
//! The only argument is `name`; anything else (here a misspelling) is an error rather than ignored.
//! ```compile_fail
//! #[weft_guest::map(nmae = "upper")]
//! fn upper(key: &[u8], value: &str) -> (Vec<u8>, String) {
//!     (key.to_vec(), value.to_uppercase())
//! }
//! ```
//!
//! A name is ASCII letters, digits and `_` (it goes into the export name and job files).
//! ```compile_fail
//! #[weft_guest::map(name = "to-upper")]
//! fn upper(key: &[u8], value: &str) -> (Vec<u8>, String) {
//!     (key.to_vec(), value.to_uppercase())
//! }
//! ```
//!
//! The function's own name is checked too when it is the UDF name: Rust allows non-ASCII
//! identifiers, the ABI does not.
//! ```compile_fail
//! #[weft_guest::map]
//! fn größe(key: &[u8], value: &[u8]) -> (usize, usize) {
//!     (key.len(), value.len())
//! }
//! ```
//!
//! Giving `name` twice is an error, not "the last one wins".
//! ```compile_fail
//! #[weft_guest::map(name = "a", name = "b")]
//! fn upper(key: &[u8], value: &str) -> (Vec<u8>, String) {
//!     (key.to_vec(), value.to_uppercase())
//! }
//! ```
//!
//! # Types
//! A parameter type must implement [`Decode`](crate::Decode); here `u64` does not (say how the
//! number is written: `Decimal<u64>` or `Le<u64>`).
//! ```compile_fail
//! #[weft_guest::filter]
//! fn small(key: &[u8], value: u64) -> bool {
//!     value < 10
//! }
//! ```
//!
//! A return type must fit the kind: a filter returns `bool` or `Result<bool, E>`.
//! ```compile_fail
//! #[weft_guest::filter]
//! fn keep(key: &[u8], value: &[u8]) -> u8 {
//!     1
//! }
//! ```
//!
//! An error type must implement `Display`, since its message is shown to the user.
//! ```compile_fail
//! struct Opaque;
//!
//! #[weft_guest::filter]
//! fn keep(key: &[u8], value: &[u8]) -> Result<bool, Opaque> {
//!     Err(Opaque)
//! }
//! ```
//!
//! A `reduce` combines values of one type into that type, because its output is fed back in.
//! ```compile_fail
//! use weft_guest::Decimal;
//!
//! #[weft_guest::reduce]
//! fn count(a: Decimal<u64>, b: String) -> Decimal<u64> {
//!     Decimal(a.0 + b.len() as u64)
//! }
//! ```
//!
//! A `flat_map` writes its records to an `&mut Emitter`, nothing else.
//! ```compile_fail
//! #[weft_guest::flat_map]
//! fn split(key: &[u8], value: &[u8], out: &mut Vec<Vec<u8>>) {
//!     out.push(value.to_vec());
//! }
//! ```
