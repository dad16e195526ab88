// The only argument is `name`; anything else (here a misspelling) is an error rather than ignored.

#![allow(unused_variables)]

#[weft_guest::map(nmae = "upper")]
fn upper(key: &[u8], value: &str) -> (Vec<u8>, String) {
    (key.to_vec(), value.to_uppercase())
}

fn main() {}
