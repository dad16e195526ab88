// The function's own name is checked too when it is the UDF name: Rust allows non-ASCII
// identifiers, the ABI does not.

#![allow(unused_variables)]

#[weft_guest::map]
fn größe(key: &[u8], value: &[u8]) -> (usize, usize) {
    (key.len(), value.len())
}

fn main() {}
