//! One module per scenario; each runs its contenders, checks their outputs and adds its rows and
//! targets to the report.

pub mod fixed;
pub mod heavy;
pub mod languages;
pub mod memory;
pub mod shuffle;
pub mod stocks;
pub mod wasm_cost;
pub mod wordcount;
