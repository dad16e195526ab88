// Word count in AssemblyScript: `split_words` turns lines into `(word, "1")` records, `sum` adds
// the counts of each word (with its combiner, so the map side folds inside the module), and
// `long_words` keeps the words of 5 bytes or more. The same module in Rust, C and Zig sits beside
// this one (examples/README.md has the exact rules).
//
// Build it with `weft udf build examples/wordcount/assemblyscript`; it exports
// `weft_flat_map_split_words`, `weft_filter_long_words`, `weft_reduce_sum` and `weft_combine_sum`.
//
// Words are bytes, not text: input need not be UTF-8, and a word is whatever lies between ASCII
// whitespace, case kept (`The` and `the` are two words).

import { Bytes, DECIMAL, Emitter, Reducer, fail, filter, flatMap } from "weft-guest";

/** Whether `byte` separates words: space, `\t`, `\n`, `\v` (0x0B), `\f` or `\r` (C's `isspace`). */
// @ts-ignore: decorator
@inline
function isSeparator(byte: u32): bool {
  return byte == 0x20 || byte - 0x09 <= 0x0D - 0x09;
}

/** Emits `(word, "1")` for each word of the line; the key is ignored. */
function splitWords(key: Bytes, line: Bytes, out: Emitter): void {
  const start = line.ptr, end = line.ptr + <usize>line.length;
  const keys = out.keyData(), values = out.valueData();
  let at = start;
  while (true) {
    while (at < end && isSeparator(load<u8>(at))) at++;
    if (at == end) return;
    const word = at;
    while (at < end && !isSeparator(load<u8>(at))) at++;
    // Written piece by piece: the word's bytes, and "1" as its value.
    keys.writeRaw(word, at - word);
    values.writeByte(0x31);
    out.endRecord();
  }
}

/** Keeps the records whose key (a word) is at least 5 bytes long. */
function longWords(word: Bytes, count: Bytes): bool {
  return word.length >= 5;
}

/** Adds two counts; a sum past the largest u64 is an error rather than a wrap-around. */
function add(a: u64, b: u64): u64 {
  const total = a + b;
  if (total < a) fail("the count " + a.toString() + " + " + b.toString() + " overflows a u64");
  return total;
}

const sum = new Reducer<u64>(DECIMAL, add);

export function weft_flat_map_split_words(frame: usize): i32 {
  return flatMap(frame, splitWords);
}

export function weft_filter_long_words(frame: usize): i32 {
  return filter(frame, longWords);
}

export function weft_reduce_sum(frame: usize): i32 {
  return sum.reduce(frame);
}

export function weft_combine_sum(frame: usize, op: i32): i32 {
  return sum.combine(frame, op);
}
