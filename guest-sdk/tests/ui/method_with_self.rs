// A UDF is a free function: the host cannot supply a `self`.

#![allow(unused_variables)]

struct Counter;
impl Counter {
    #[weft_guest::filter]
    fn keep(&self, key: &[u8], value: &[u8]) -> bool {
        !value.is_empty()
    }
}

fn main() {}
