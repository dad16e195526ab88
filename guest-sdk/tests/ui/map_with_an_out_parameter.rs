// Each kind takes a fixed number of parameters. Here a `map` is given the `out` parameter of a
// `flat_map`:

#![allow(unused_variables)]

#[weft_guest::map]
fn upper(key: &[u8], value: &str, out: &mut weft_guest::Emitter) -> (Vec<u8>, String) {
    (key.to_vec(), value.to_uppercase())
}

fn main() {}
