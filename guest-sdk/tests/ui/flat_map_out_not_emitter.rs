// A `flat_map` writes its records to an `&mut Emitter`, nothing else.

#![allow(unused_variables)]

#[weft_guest::flat_map]
fn split(key: &[u8], value: &[u8], out: &mut Vec<Vec<u8>>) {
    out.push(value.to_vec());
}

fn main() {}
