//! What a UDF may return: `T` or `Result<T, E>` for each kind, told apart by traits.
//!
//! The attribute macros never look at the return type's name (a type alias or a re-export of
//! `Result` would fool them); the glue instead passes whatever the function returns to one of these
//! traits, and the compiler picks the implementation. Each trait is implemented for the plain
//! output and for `Result<output, E>` with any `E: Display`, whose message becomes the UDF error.
//! They are public so their names show up in compiler errors and docs; you do not call them.

use std::convert::Infallible;
use std::fmt::Display;

use crate::codec::Encode;

/// The return type of a `#[map]` UDF: `(key, value)` or `Result<(key, value), E>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for a #[map] UDF",
    label = "expected `(key, value)` or `Result<(key, value), E>`",
    note = "key and value must implement `weft_guest::Encode`; \
            an error type must implement `Display`"
)]
pub trait IntoMapOutput {
    /// The output key.
    type Key: Encode;
    /// The output value.
    type Value: Encode;
    /// The error, shown to the user; [`Infallible`] for a plain return.
    type Error: Display;
    /// Splits the return value into the record or the error.
    fn into_map_output(self) -> Result<(Self::Key, Self::Value), Self::Error>;
}

impl<K: Encode, V: Encode> IntoMapOutput for (K, V) {
    type Key = K;
    type Value = V;
    type Error = Infallible;
    fn into_map_output(self) -> Result<(K, V), Infallible> {
        Ok(self)
    }
}

impl<K: Encode, V: Encode, E: Display> IntoMapOutput for Result<(K, V), E> {
    type Key = K;
    type Value = V;
    type Error = E;
    fn into_map_output(self) -> Result<(K, V), E> {
        self
    }
}

/// The return type of a `#[filter]` UDF: `bool` (true keeps the record) or `Result<bool, E>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for a #[filter] UDF",
    label = "expected `bool` or `Result<bool, E>`",
    note = "an error type must implement `Display`"
)]
pub trait IntoFilterOutput {
    /// The error, shown to the user; [`Infallible`] for a plain `bool`.
    type Error: Display;
    /// Whether to keep the record, or the error.
    fn into_filter_output(self) -> Result<bool, Self::Error>;
}

impl IntoFilterOutput for bool {
    type Error = Infallible;
    fn into_filter_output(self) -> Result<bool, Infallible> {
        Ok(self)
    }
}

impl<E: Display> IntoFilterOutput for Result<bool, E> {
    type Error = E;
    fn into_filter_output(self) -> Result<bool, E> {
        self
    }
}

/// The return type of `#[flat_map]` and `#[group_reduce]` UDFs, which write their output to an
/// [`Emitter`](crate::Emitter): `()` or `Result<(), E>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for a #[flat_map] or #[group_reduce] UDF",
    label = "expected `()` or `Result<(), E>`: output records go to the `Emitter`",
    note = "an error type must implement `Display`"
)]
pub trait IntoUnitResult {
    /// The error, shown to the user; [`Infallible`] for `()`.
    type Error: Display;
    /// Success or the error.
    fn into_unit_result(self) -> Result<(), Self::Error>;
}

impl IntoUnitResult for () {
    type Error = Infallible;
    fn into_unit_result(self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl<E: Display> IntoUnitResult for Result<(), E> {
    type Error = E;
    fn into_unit_result(self) -> Result<(), E> {
        self
    }
}

/// The return type of a `#[reduce]` UDF: the combined value `V`, or `Result<V, E>`.
///
/// The blanket implementation covers every [`Encode`] type; `Result` never implements `Encode`,
/// which is what keeps the two implementations apart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for a #[reduce] UDF",
    label = "expected the value type of the parameters, or `Result` of it",
    note = "the value must implement `weft_guest::Encode`; an error type must implement `Display`"
)]
pub trait IntoReduceOutput {
    /// The combined value.
    type Value: Encode;
    /// The error, shown to the user; [`Infallible`] for a plain value.
    type Error: Display;
    /// The combined value or the error.
    fn into_reduce_output(self) -> Result<Self::Value, Self::Error>;
}

impl<V: Encode> IntoReduceOutput for V {
    type Value = V;
    type Error = Infallible;
    fn into_reduce_output(self) -> Result<V, Infallible> {
        Ok(self)
    }
}

impl<V: Encode, E: Display> IntoReduceOutput for Result<V, E> {
    type Value = V;
    type Error = E;
    fn into_reduce_output(self) -> Result<V, E> {
        self
    }
}
