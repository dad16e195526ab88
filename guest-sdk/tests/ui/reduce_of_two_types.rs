// A `reduce` combines values of one type into that type, because its output is fed back in.

#![allow(unused_variables)]

use weft_guest::Decimal;

#[weft_guest::reduce]
fn count(a: Decimal<u64>, b: String) -> Decimal<u64> {
    Decimal(a.0 + b.len() as u64)
}

fn main() {}
