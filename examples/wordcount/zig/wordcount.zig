//! Word count in Zig: `split_words` turns lines into `(word, "1")` records, `sum` adds the counts
//! of each word (map-side too, in the combiner the SDK generates), and `long_words` keeps the
//! words of 5 bytes or more (the mixed-language job of examples/mixed uses it). The same module in
//! Rust, C and AssemblyScript sits beside this one (examples/README.md).
//!
//! Build it with `weft udf build examples/wordcount/zig`; it exports
//! `weft_flat_map_split_words`, `weft_filter_long_words`, `weft_reduce_sum` and `weft_combine_sum`.
//!
//! Words are bytes, not text: a word is whatever lies between ASCII whitespace, case kept.

const std = @import("std");
const weft = @import("weft");
const Bytes = weft.Bytes;

comptime {
    weft.flatMap("split_words", splitWords);
    weft.filter("long_words", longWords);
    weft.reduce("sum", sum);
}

/// The six separator bytes of C's `isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`, as a table
/// (one load per byte instead of six comparisons).
const separator: [256]bool = blk: {
    var table = [_]bool{false} ** 256;
    for (" \t\n\x0b\x0c\r") |c| table[c] = true;
    break :blk table;
};

/// Emits `(word, "1")` for each maximal run of non-whitespace bytes of the line. The key (where
/// the line is) is not read: `void` says so, and the host may skip making it.
fn splitWords(_: void, line: Bytes, out: *weft.Emitter) !void {
    var i: usize = 0;
    while (i < line.len) {
        while (i < line.len and separator[line[i]]) i += 1;
        const start = i;
        while (i < line.len and !separator[line[i]]) i += 1;
        if (i > start) try out.emit(line[start..i], "1");
    }
}

/// Keeps the records whose key (a word) is at least 5 bytes long.
fn longWords(word: Bytes, _: Bytes) bool {
    return word.len >= 5;
}

/// Adds two counts (the SDK parses and prints the decimal values); a sum past `u64` is an error,
/// not a wrap-around.
fn sum(a: u64, b: u64) !u64 {
    return std.math.add(u64, a, b) catch weft.fail("the count {d} + {d} overflows a u64", .{ a, b });
}
