// Giving `name` twice is an error, not "the last one wins".

#![allow(unused_variables)]

#[weft_guest::map(name = "a", name = "b")]
fn upper(key: &[u8], value: &str) -> (Vec<u8>, String) {
    (key.to_vec(), value.to_uppercase())
}

fn main() {}
