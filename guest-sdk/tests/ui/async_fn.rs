// The host calls a UDF synchronously, once per batch: no `async`.

#![allow(unused_variables)]

#[weft_guest::filter]
async fn keep(key: &[u8], value: &[u8]) -> bool {
    !value.is_empty()
}

fn main() {}
