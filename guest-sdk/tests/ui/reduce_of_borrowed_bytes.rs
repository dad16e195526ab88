// A `reduce`'s result is folded with the next value, so its values cannot borrow where it returns
// an owned type: it takes `Vec<u8>`, not `&[u8]`.

#[weft_guest::reduce]
fn longest(a: &[u8], b: &[u8]) -> Vec<u8> {
    if b.len() > a.len() { b.to_vec() } else { a.to_vec() }
}

fn main() {}
