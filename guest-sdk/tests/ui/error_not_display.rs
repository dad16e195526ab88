// An error type must implement `Display`, since its message is shown to the user.

#![allow(unused_variables)]

struct Opaque;

#[weft_guest::filter]
fn keep(key: &[u8], value: &[u8]) -> Result<bool, Opaque> {
    Err(Opaque)
}

fn main() {}
