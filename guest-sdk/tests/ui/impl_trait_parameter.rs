// `impl Trait` in a parameter is a type parameter in disguise.

#![allow(unused_variables)]

#[weft_guest::filter]
fn keep(key: &[u8], value: impl AsRef<[u8]>) -> bool {
    !value.as_ref().is_empty()
}

fn main() {}
