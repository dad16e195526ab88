// The exported function needs concrete types, so no type (or const) parameters. Lifetime
// parameters are fine.

#![allow(unused_variables)]

#[weft_guest::map]
fn identity<T: AsRef<[u8]>>(key: T, value: T) -> (T, T) {
    (key, value)
}

fn main() {}
