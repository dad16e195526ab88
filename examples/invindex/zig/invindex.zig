//! Inverted index: `terms` turns each `DOCID<TAB>TEXT` line into `(term, DOCID)` records, and
//! `postings` gathers each term's documents, sorted and deduplicated. The same module in Rust, C
//! and AssemblyScript sits beside this one (examples/README.md has the exact rules).
//!
//! Build it with `weft udf build examples/invindex/zig`; it exports `weft_flat_map_terms` and
//! `weft_group_reduce_postings`.

const std = @import("std");
const weft = @import("weft");
const Bytes = weft.Bytes;

comptime {
    weft.flatMap("terms", terms);
    weft.groupReduce("postings", postings);
}

/// The lower-cased term being built: reused from record to record (emit copies it).
var term: weft.Buffer = .{};

/// Emits `(term, DOCID)` for every term of the line's text, duplicates included: a term is a
/// maximal run of ASCII letters and digits, lower-cased. A line without a TAB is an error.
fn terms(_: void, line: Bytes, out: *weft.Emitter) !void {
    const tab = std.mem.indexOfScalar(u8, line, '\t') orelse
        return weft.fail("the line {} has no TAB between a document id and its text", .{weft.quote(line)});
    const doc = line[0..tab];
    const text = line[tab + 1 ..];
    var i: usize = 0;
    while (i < text.len) {
        while (i < text.len and !std.ascii.isAlphanumeric(text[i])) i += 1;
        term.clear();
        while (i < text.len and std.ascii.isAlphanumeric(text[i])) : (i += 1) {
            try term.appendByte(std.ascii.toLower(text[i]));
        }
        if (term.items().len > 0) try out.emit(term.items(), doc);
    }
}

/// The group's document ids, and their join: kept from group to group.
var docs: std.ArrayListUnmanaged(Bytes) = .{};
var joined: weft.Buffer = .{};

fn lessThan(_: void, a: Bytes, b: Bytes) bool {
    return std.mem.order(u8, a, b) == .lt;
}

/// One record per term: its document ids, deduplicated, sorted bytewise and joined with `,`.
fn postings(key: Bytes, values: *weft.Values, out: *weft.Emitter) !void {
    docs.clearRetainingCapacity();
    while (values.next()) |doc| try docs.append(weft.allocator, doc);
    std.mem.sortUnstable(Bytes, docs.items, {}, lessThan);
    joined.clear();
    for (docs.items, 0..) |doc, i| {
        if (i > 0) {
            if (std.mem.eql(u8, doc, docs.items[i - 1])) continue;
            try joined.appendByte(',');
        }
        try joined.append(doc);
    }
    try out.emit(key, joined.items());
}
