//! weft-io's integration tests, one module per area. Every expected answer is computed
//! independently of the code under test (the reference line splitter in `common`) or written out
//! by hand.

mod commit;
mod common;
mod formats;
mod inputs;
mod output;
mod splits;
