//! What the attributes refuse, each case a file in `tests/ui/` that must fail to compile with
//! exactly the error in its `.stderr` twin: the message and the span it points at. (A
//! `compile_fail` doctest passes on any error at all, a typo in the test included.)
//!
//! The attributes report a mistake as a compile error pointing at the offending tokens; they never
//! panic. Shape mistakes are caught by the attribute itself; type mistakes by the compiler, through
//! the SDK's traits, in native builds as well as wasm ones (so `cargo test` catches them too).
//!
//! After changing a message on purpose, `TRYBUILD=overwrite cargo test -p weft-guest --test ui`
//! rewrites the `.stderr` files; read the diff before committing it.

#[test]
fn misuses_are_refused_with_their_message_and_span() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
