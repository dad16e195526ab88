// A parameter type must implement `Decode`; here `u64` does not (say how the
// number is written: `Decimal<u64>` or `Le<u64>`).

#![allow(unused_variables)]

#[weft_guest::filter]
fn small(key: &[u8], value: u64) -> bool {
    value < 10
}

fn main() {}
