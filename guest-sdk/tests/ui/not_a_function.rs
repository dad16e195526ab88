// The attributes apply to functions only.

#![allow(unused_variables)]

#[weft_guest::map]
struct NotAFunction;

fn main() {}
