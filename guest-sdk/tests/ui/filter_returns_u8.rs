// A return type must fit the kind: a filter returns `bool` or `Result<bool, E>`.

#![allow(unused_variables)]

#[weft_guest::filter]
fn keep(key: &[u8], value: &[u8]) -> u8 {
    1
}

fn main() {}
