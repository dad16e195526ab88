// A name is ASCII letters, digits and `_` (it goes into the export name and job files).

#![allow(unused_variables)]

#[weft_guest::map(name = "to-upper")]
fn upper(key: &[u8], value: &str) -> (Vec<u8>, String) {
    (key.to_vec(), value.to_uppercase())
}

fn main() {}
