//! Attribute macros of the Weft Rust guest SDK: `#[map]`, `#[filter]`, `#[flat_map]`, `#[reduce]`
//! and `#[group_reduce]`. Use them through `weft_guest`, which re-exports them and documents them
//! with examples; this crate holds only the code generation.
//!
//! # Brief overview
//! Each macro keeps the annotated function exactly as written (so it stays callable, and unit
//! tests run natively) and adds next to it:
//! - on `wasm32`, an exported function `weft_<kind>_<name>` of type `(frame: i32) -> i32` that
//!   calls the SDK's entry point with a small closure: decode the parameters, call the function,
//!   convert what it returned (the per-batch work is ordinary generic code in `weft_guest`);
//! - elsewhere, a hidden public constant `__WEFT_NATIVE_<function>` (a `weft_abi::native::NativeUdf`)
//!   whose function passes the same closure to the SDK's native entry point, so that a host can run
//!   the crate's UDFs in-process to measure what the sandbox costs, and a native `cargo check`
//!   reports unsupported types just as a wasm build would. [`native_udfs!`] lists such constants.
//!
//! The macros only check the shape of the function (number of parameters, no `self`, no `async`,
//! no type parameters) and the attribute arguments. Types are left to the compiler through the
//! SDK's traits, never matched by name, so aliases and re-exports work. A mistake becomes a
//! `compile_error!` at the offending tokens, never a panic of the macro.
//!
//! # Layout
//! - `args`: the attribute arguments (`name = "..."`).
//! - `udf`: the kinds, the signature checks and the generated code.
//! - `native`: [`native_udfs!`].

mod args;
mod native;
mod udf;

use proc_macro::TokenStream;

use crate::udf::Kind;

/// Turns `fn(key: K, value: V) -> (K2, V2)` (or `Result<(K2, V2), E>`) into a `map` UDF: one output
/// record per input record. See `weft_guest` for the details and examples.
#[proc_macro_attribute]
pub fn map(attr: TokenStream, item: TokenStream) -> TokenStream {
    udf::expand(Kind::Map, attr.into(), item.into()).into()
}

/// Turns `fn(key: K, value: V) -> bool` (or `Result<bool, E>`) into a `filter` UDF: `true` keeps
/// the record. See `weft_guest` for the details and examples.
#[proc_macro_attribute]
pub fn filter(attr: TokenStream, item: TokenStream) -> TokenStream {
    udf::expand(Kind::Filter, attr.into(), item.into()).into()
}

/// Turns `fn(key: K, value: V, out: &mut Emitter)` (returning `()` or `Result<(), E>`) into a
/// `flat_map` UDF: any number of output records per input record. See `weft_guest`.
#[proc_macro_attribute]
pub fn flat_map(attr: TokenStream, item: TokenStream) -> TokenStream {
    udf::expand(Kind::FlatMap, attr.into(), item.into()).into()
}

/// Turns `fn(a: V, b: V) -> V` (or `Result<V, E>`, optionally with a leading `key: K`) into a
/// `reduce` UDF that folds each key's values into one. See `weft_guest`.
#[proc_macro_attribute]
pub fn reduce(attr: TokenStream, item: TokenStream) -> TokenStream {
    udf::expand(Kind::Reduce, attr.into(), item.into()).into()
}

/// Turns `fn(key: K, values: Values<'_, V>, out: &mut Emitter)` (returning `()` or `Result<(), E>`)
/// into a `group_reduce` UDF that sees all values of a key at once. See `weft_guest`.
#[proc_macro_attribute]
pub fn group_reduce(attr: TokenStream, item: TokenStream) -> TokenStream {
    udf::expand(Kind::GroupReduce, attr.into(), item.into()).into()
}

/// `native_udfs![path::to::f, g]`: the native constants of the UDFs `f` and `g` (their
/// `__WEFT_NATIVE_<function>`), as an array `[NativeUdf; N]`. Native builds only; see `weft_guest`.
#[proc_macro]
pub fn native_udfs(input: TokenStream) -> TokenStream {
    native::expand(input.into()).into()
}
