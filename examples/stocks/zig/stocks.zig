//! Largest daily volume per stock symbol, from CSV quotes with a header naming the columns
//! `symbol` and `volume` (and any others): `parse` reads each row's two fields by name into
//! `(symbol, volume)` records, and `max` keeps the largest volume of each symbol. Weft parses the
//! CSV (quoting, any delimiter); the UDF only reads fields, through `weft.Row`.
//!
//! Build it with `weft udf build examples/stocks/zig`; it exports `weft_flat_map_parse`,
//! `weft_reduce_max` and `weft_combine_max`.

const weft = @import("weft");
const Bytes = weft.Bytes;

comptime {
    weft.flatMap("parse", parse);
    weft.reduce("max", max);
}

/// Emits `(symbol, volume)` for a quote row, the volume re-encoded (`0042` comes out as `42`); the
/// key (where the row is) is not read. A row without a `symbol` or `volume` column, or whose volume
/// is not a decimal u64, fails the call with a message naming the column; Weft adds the file and
/// line.
fn parse(_: void, value: Bytes, out: *weft.Emitter) !void {
    const row = try weft.Row.parse(value);
    const symbol = try row.require("symbol");
    const volume = try row.decimal(u64, "volume");
    var buf: [weft.decimal_max]u8 = undefined;
    try out.emit(symbol, weft.formatDecimal(&buf, volume));
}

/// Keeps the larger of two volumes (decimal values, parsed and printed by the SDK).
fn max(a: u64, b: u64) u64 {
    return @max(a, b);
}
