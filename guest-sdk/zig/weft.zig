//! Weft's Zig SDK: write Weft UDFs as plain Zig functions over byte slices; this file turns them
//! into the exports of a guest module (guest-sdk/ABI.md), hiding the call frame and the batch
//! layout. Import it as a module named `weft` (`weft udf build` does; README.md beside this file
//! has the command line) and export the UDFs from a `comptime` block:
//!
//! ```zig
//! const std = @import("std");
//! const weft = @import("weft");
//! const Bytes = weft.Bytes;
//!
//! comptime {
//!     weft.flatMap("split_words", splitWords); // exports weft_flat_map_split_words
//!     weft.filter("long_words", longWords); //    weft_filter_long_words
//!     weft.reduce("sum", sum); //                 weft_reduce_sum and its combiner weft_combine_sum
//! }
//!
//! // `_: void` instead of `key: Bytes`: the UDF never reads keys (the module says so, §3b).
//! fn splitWords(_: void, line: Bytes, out: *weft.Emitter) !void {
//!     var words = std.mem.tokenizeAny(u8, line, " \t\n\r\x0b\x0c");
//!     while (words.next()) |word| try out.emit(word, "1");
//! }
//!
//! fn longWords(word: Bytes, _: Bytes) bool {
//!     return word.len >= 5;
//! }
//!
//! // Values are decimal integers: the SDK parses and prints them.
//! fn sum(a: u64, b: u64) !u64 {
//!     return std.math.add(u64, a, b) catch weft.fail("the count {d} + {d} overflows a u64", .{ a, b });
//! }
//! ```
//!
//! # The UDFs
//! Each registration takes the UDF's name (ASCII letters, digits and `_`, unique in the module)
//! and a function; a function of the wrong shape is a compile error saying the shape expected.
//! `K` is the key parameter: `Bytes`, or `void` for a UDF that never reads keys (the SDK then
//! states `key=unused` in the module's `weft.udfs` section, and the host may skip making keys).
//! Every function may return a plain value or an error union (`!T`).
//!
//! | registration | function | |
//! |---|---|---|
//! | `map(name, f)` | `fn (K, value: Bytes) !Record` | exactly one record per input record |
//! | `flatMap(name, f)` | `fn (K, value: Bytes, out: *Emitter) !void` | `try out.emit(key, value)` 0..n times |
//! | `filter(name, f)` | `fn (K, value: Bytes) !bool` | true keeps the record |
//! | `reduce(name, f)` | `fn (a: T, b: T) !T`, T an integer type | values are decimal integers |
//! | `reduce(name, f)` | `fn (a: Bytes, b: Bytes, out: *Buffer) !void` | write the fold of a and b into `out` |
//! | `groupReduce(name, f)` | `fn (key: Bytes, values: *Values, out: *Emitter) !void` | all of a key's values at once |
//!
//! A `reduce` must be associative and commutative (ABI.md §3): the host folds values in any order
//! and feeds results back in as values. Every `reduce` gets a combiner, `weft_combine_<name>`
//! (§3a): a hash table in the module's memory that folds a map task's output before it leaves the
//! module. The integer form holds each key's running value as a number, so a word count's map
//! side parses one small number per record and prints one per word.
//!
//! Emitted bytes are copied at once: they may point into the input, into a reused buffer, or to
//! the stack. A `Record` returned by a map is copied too, as soon as the function returns.
//!
//! # Errors
//! Return `weft.fail("format {s}", .{args})` (it formats the message and returns
//! `error.UdfFailed`) to fail the call with that message; the SDK reports it as status 1,
//! prefixed with the UDF's name and the record or group: `sum: group 3: the count ... overflows a
//! u64`. Any other error is reported by name (`error.OutOfMemory` as "out of memory"). A failed
//! call fails the task; Weft does not retry it. A panic traps, and the host shows what the module
//! wrote to stderr (modules are built for wasm32-wasi, so `std.debug.print` works as a log).
//!
//! # Helpers
//! `parseDecimal`/`formatDecimal` (decimal integers, strictly ASCII digits), `Row` (a value of
//! `format = "csv"` input, fields by name or index), `Buffer` (a growable byte buffer), `quote`
//! (a byte string for a message, quoted, escaped and cut short) and `allocator` (the module's
//! allocator, behind `weft_alloc`/`weft_free` too: `std.heap.wasm_allocator` for small blocks,
//! runs of 64 KiB pages, reused and merged, for large ones).

const std = @import("std");

/// Keys, values and everything else a UDF reads or writes: bytes, not necessarily UTF-8.
pub const Bytes = []const u8;

/// The ABI version this SDK implements (`weft_abi_version`).
pub const abi_version: u32 = 1;

/// The module's allocator: the host's buffers (`weft_alloc`) and the SDK's own come from it, and
/// so may a UDF's. Blocks under 64 KiB come from `std.heap.wasm_allocator` (size classes of powers
/// of two); larger ones are runs of whole 64 KiB pages (`pages`), reused first-fit and merged when
/// freed, and grown in place where the next pages are free or the memory's end: the batches, output
/// arrays and combiner tables are such blocks, and with power-of-two classes alone a module's
/// memory ran to twice what it held.
pub const allocator: std.mem.Allocator = .{ .ptr = undefined, .vtable = &pages.vtable };

/// One output record of a `map`.
pub const Record = struct {
    key: Bytes,
    value: Bytes,
};

// ---------------------------------------------------------------------------------------------
// Errors

/// The error of a UDF that failed with a message (see `fail`).
pub const Error = error{UdfFailed};

/// The message of the last `fail`: only read when a UDF returns `error.UdfFailed`.
var fail_buf: [8 * 1024]u8 = undefined;
var fail_len: usize = 0;

/// Formats the message of a failed call (as `std.fmt`) and returns `error.UdfFailed`, so that
/// `return weft.fail("bad volume {s}", .{v});` fails the call with it. Messages over 8 KiB are cut.
pub fn fail(comptime fmt: []const u8, args: anytype) Error {
    fail_len = formatInto(&fail_buf, fmt, args).len;
    return error.UdfFailed;
}

/// `fmt` with `args` into `buf`, cut with "..." when it does not fit.
fn formatInto(buf: []u8, comptime fmt: []const u8, args: anytype) []u8 {
    var stream = std.io.fixedBufferStream(buf);
    stream.writer().print(fmt, args) catch {
        @memcpy(buf[buf.len - 3 ..], "...");
        return buf;
    };
    return stream.getWritten();
}

/// A byte string for a message: `std.fmt` prints it quoted, escaped, and cut after 64 bytes.
pub fn quote(bytes: Bytes) Quoted {
    return .{ .bytes = bytes };
}

pub const Quoted = struct {
    bytes: Bytes,

    pub fn format(self: Quoted, comptime _: []const u8, _: std.fmt.FormatOptions, writer: anytype) !void {
        const cut = self.bytes.len > 64;
        const shown = if (cut) self.bytes[0..64] else self.bytes;
        try writer.print("\"{}\"{s}", .{ std.zig.fmtEscapes(shown), if (cut) "..." else "" });
    }
};

// ---------------------------------------------------------------------------------------------
// Decimal integers

/// `bytes` as a decimal integer of type `T`: ASCII digits only (a `-` first for a signed type),
/// no sign, space or `_` otherwise; null when it is not one or does not fit `T`.
pub fn parseDecimal(comptime T: type, bytes: Bytes) ?T {
    const info = comptime intInfo(T, "parseDecimal");
    if (info.signedness == .signed) {
        if (bytes.len > 0 and bytes[0] == '-') {
            const magnitude = parseDecimal(u64, bytes[1..]) orelse return null;
            if (magnitude > @as(u64, std.math.maxInt(T)) + 1) return null;
            return @intCast(-@as(i65, magnitude));
        }
        return std.math.cast(T, parseDecimal(u64, bytes) orelse return null);
    }
    if (bytes.len == 0) return null;
    var value: u64 = 0;
    if (bytes.len <= 19) {
        // At most 19 digits: no overflow of a u64 is possible.
        for (bytes) |b| {
            const digit = b -% '0';
            if (digit > 9) return null;
            value = value * 10 + digit;
        }
    } else {
        for (bytes) |b| {
            const digit = b -% '0';
            if (digit > 9) return null;
            value = std.math.mul(u64, value, 10) catch return null;
            value = std.math.add(u64, value, digit) catch return null;
        }
    }
    return std.math.cast(T, value);
}

/// The room `formatDecimal` needs for any integer of up to 64 bits.
pub const decimal_max = 20;

/// `value` (an integer of up to 64 bits) in decimal, without leading zeros, written into `buf`.
pub fn formatDecimal(buf: *[decimal_max]u8, value: anytype) Bytes {
    const T = @TypeOf(value);
    const info = comptime intInfo(if (T == comptime_int) i65 else T, "formatDecimal");
    var at: usize = decimal_max;
    const negative = info.signedness == .signed and value < 0;
    var rest: u64 = if (negative) @intCast(-@as(i65, value)) else @intCast(value);
    while (true) {
        at -= 1;
        buf[at] = '0' + @as(u8, @intCast(rest % 10));
        rest /= 10;
        if (rest == 0) break;
    }
    if (negative) {
        at -= 1;
        buf[at] = '-';
    }
    return buf[at..];
}

fn intInfo(comptime T: type, comptime what: []const u8) std.builtin.Type.Int {
    switch (@typeInfo(T)) {
        .int => |info| {
            if (info.bits > 64 and T != i65) @compileError(what ++ ": integers of up to 64 bits, not " ++ @typeName(T));
            return info;
        },
        else => @compileError(what ++ ": an integer type, not " ++ @typeName(T)),
    }
}

// ---------------------------------------------------------------------------------------------
// Output

/// Growable bytes: the output of a bytes `reduce`, or a scratch buffer a UDF keeps.
pub const Buffer = struct {
    list: std.ArrayListUnmanaged(u8) = .{},

    pub fn append(self: *Buffer, bytes: Bytes) error{OutOfMemory}!void {
        try self.list.appendSlice(allocator, bytes);
    }

    pub fn appendByte(self: *Buffer, byte: u8) error{OutOfMemory}!void {
        try self.list.append(allocator, byte);
    }

    /// Appends an integer in decimal.
    pub fn appendDecimal(self: *Buffer, value: anytype) error{OutOfMemory}!void {
        var buf: [decimal_max]u8 = undefined;
        try self.append(formatDecimal(&buf, value));
    }

    /// Appends `fmt` with `args`, as `std.fmt`.
    pub fn print(self: *Buffer, comptime fmt: []const u8, args: anytype) error{OutOfMemory}!void {
        try self.list.writer(allocator).print(fmt, args);
    }

    pub fn items(self: *const Buffer) Bytes {
        return self.list.items;
    }

    /// Empties the buffer, keeping its memory.
    pub fn clear(self: *Buffer) void {
        self.list.clearRetainingCapacity();
    }

    pub fn deinit(self: *Buffer) void {
        self.list.deinit(allocator);
    }
};

/// A list of byte strings in the ABI's binary layout (`offsets[0] = 0`, then each one's end).
const Column = struct {
    offsets: std.ArrayListUnmanaged(u32) = .{},
    data: std.ArrayListUnmanaged(u8) = .{},

    fn clear(self: *Column) error{OutOfMemory}!void {
        self.data.clearRetainingCapacity();
        self.offsets.clearRetainingCapacity();
        try self.offsets.append(allocator, 0);
    }

    inline fn push(self: *Column, bytes: Bytes) error{OutOfMemory}!void {
        // 16 bytes to spare, so `copy` may store whole words. The check is inline, the growth
        // not: an emit in steady state is a compare, a copy and a store.
        if (self.data.capacity - self.data.items.len < bytes.len + 16 or
            self.offsets.capacity == self.offsets.items.len) try self.grow(bytes.len + 16);
        const at = self.data.items.len;
        copy(self.data.items.ptr + at, bytes);
        self.data.items.len = at + bytes.len;
        // Lossless: wasm32 memory is at most 4 GiB.
        self.offsets.appendAssumeCapacity(@intCast(self.data.items.len));
    }

    fn grow(self: *Column, bytes: usize) error{OutOfMemory}!void {
        @branchHint(.cold);
        try self.data.ensureUnusedCapacity(allocator, bytes);
        try self.offsets.ensureUnusedCapacity(allocator, 1);
    }

    fn count(self: *const Column) usize {
        return self.offsets.items.len -| 1;
    }
};

/// Copies `src` to `dst` with fixed-size loads and stores up to 16 bytes: on wasm a copy of
/// variable length is a `memory.copy`, a call into the runtime, slow for a short word.
inline fn copy(dst: [*]u8, src: Bytes) void {
    const n = src.len;
    if (n > 16) {
        @memcpy(dst[0..n], src);
    } else if (n >= 8) {
        const a = load64(src.ptr);
        const b = load64(src.ptr + n - 8);
        std.mem.writeInt(u64, dst[0..8], a, .little);
        std.mem.writeInt(u64, dst[n - 8 ..][0..8], b, .little);
    } else if (n >= 4) {
        const a = load32(src.ptr);
        const b = load32(src.ptr + n - 4);
        std.mem.writeInt(u32, dst[0..4], a, .little);
        std.mem.writeInt(u32, dst[n - 4 ..][0..4], b, .little);
    } else if (n > 0) {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

inline fn load64(p: [*]const u8) u64 {
    return std.mem.readInt(u64, p[0..8], .little);
}

inline fn load32(p: [*]const u8) u32 {
    return std.mem.readInt(u32, p[0..4], .little);
}

/// Where a `flatMap` or `groupReduce` puts its output records.
pub const Emitter = struct {
    keys: Column = .{},
    values: Column = .{},

    /// Appends the record (key, value); both are copied.
    pub inline fn emit(self: *Emitter, key: Bytes, value: Bytes) error{OutOfMemory}!void {
        try self.keys.push(key);
        try self.values.push(value);
    }

    /// Number of records emitted in this call so far.
    pub fn len(self: *const Emitter) usize {
        return self.keys.count();
    }

    fn clear(self: *Emitter) error{OutOfMemory}!void {
        try self.keys.clear();
        try self.values.clear();
    }
};

// ---------------------------------------------------------------------------------------------
// Input

/// A list of byte strings the host wrote: item `i` is `data[offsets[i]..offsets[i + 1]]`.
const Array = struct {
    offsets: [*]const u32,
    data: [*]const u8,

    inline fn get(self: Array, i: usize) Bytes {
        return self.data[self.offsets[i]..self.offsets[i + 1]];
    }

    const empty_offsets = [1]u32{0};
    const empty: Array = .{ .offsets = &empty_offsets, .data = @ptrCast(&empty_offsets) };
};

/// The values of one group of a `groupReduce`, in no particular order.
pub const Values = struct {
    array: Array,
    first: u32,
    end: u32,
    at: u32,

    /// Number of values in the group (at least 1).
    pub fn len(self: *const Values) usize {
        return self.end - self.first;
    }

    /// Value `i` of the group, `i < len()`.
    pub fn get(self: *const Values, i: usize) Bytes {
        return self.array.get(self.first + i);
    }

    /// The next value, or null after the last.
    pub fn next(self: *Values) ?Bytes {
        if (self.at == self.end) return null;
        self.at += 1;
        return self.array.get(self.at - 1);
    }

    /// Starts `next` over from the first value.
    pub fn reset(self: *Values) void {
        self.at = self.first;
    }
};

/// A value of `format = "csv"` input: one CSV record, its fields unquoted, and the header's
/// names when the input has one (ABI.md, "Values of CSV input").
pub const Row = struct {
    n: usize,
    named: bool,
    /// The lengths, as little-endian u32s: `n` fields', then (when named) `n` names'.
    lengths: [*]const u8,
    /// The fields' bytes, then the names'.
    data: Bytes,
    names_at: usize,

    /// Reads `value` as a row; fails (with a message) when it is not one.
    pub fn parse(value: Bytes) Error!Row {
        return decode(value) orelse fail("the value is not a CSV row (is the input's format \"csv\"?)", .{});
    }

    /// `value` as a row, or null when it is not one.
    pub fn decode(value: Bytes) ?Row {
        if (value.len < 8) return null;
        const n: usize = load32(value.ptr);
        const named = switch (load32(value.ptr + 4)) {
            0 => false,
            1 => true,
            else => return null,
        };
        const count = if (named) n * 2 else n;
        if (count > (value.len - 8) / 4) return null;
        const header = 8 + 4 * count;
        var total: usize = 0;
        var fields: usize = 0;
        for (0..count) |i| {
            total += load32(value.ptr + 8 + 4 * i);
            if (total > value.len) return null;
            if (i + 1 == n) fields = total;
        }
        if (header + total != value.len) return null;
        return .{ .n = n, .named = named, .lengths = value.ptr + 8, .data = value[header..], .names_at = fields };
    }

    /// The number of fields.
    pub fn len(self: Row) usize {
        return self.n;
    }

    fn length(self: Row, i: usize) usize {
        return load32(self.lengths + 4 * i);
    }

    /// Field `i` (from 0), null past the last.
    pub fn get(self: Row, i: usize) ?Bytes {
        if (i >= self.n) return null;
        var at: usize = 0;
        for (0..i) |j| at += self.length(j);
        return self.data[at..][0..self.length(i)];
    }

    /// Name `i` of the header, null without a header or past the last.
    pub fn name(self: Row, i: usize) ?Bytes {
        if (!self.named or i >= self.n) return null;
        var at = self.names_at;
        for (0..i) |j| at += self.length(self.n + j);
        return self.data[at..][0..self.length(self.n + i)];
    }

    /// The field called `column` in the header (the first, if it repeats), null without a header
    /// or such a column.
    pub fn field(self: Row, column: Bytes) ?Bytes {
        if (!self.named) return null;
        var field_at: usize = 0;
        var name_at = self.names_at;
        for (0..self.n) |i| {
            const field_len = self.length(i);
            const name_len = self.length(self.n + i);
            if (std.mem.eql(u8, self.data[name_at..][0..name_len], column)) return self.data[field_at..][0..field_len];
            field_at += field_len;
            name_at += name_len;
        }
        return null;
    }

    /// The field called `column`, or a failure naming what is missing: `the row has no field
    /// "volume" (its fields: symbol, vol)`.
    pub fn require(self: Row, column: Bytes) Error!Bytes {
        if (self.field(column)) |value| return value;
        if (!self.named) return fail("the row has no field \"{s}\": the input has no header (set `header = true`, or read fields by index)", .{column});
        var names: [1024]u8 = undefined;
        var stream = std.io.fixedBufferStream(&names);
        for (0..self.n) |i| {
            stream.writer().print("{s}{s}", .{ if (i > 0) ", " else "", self.name(i).? }) catch break;
        }
        return fail("the row has no field \"{s}\" (its fields: {s})", .{ column, stream.getWritten() });
    }

    /// The field called `column` as a decimal integer, or a failure naming the column.
    pub fn decimal(self: Row, comptime T: type, column: Bytes) Error!T {
        const bytes = try self.require(column);
        return parseDecimal(T, bytes) orelse fail("the row field \"{s}\" is not a decimal {s}: {}", .{ column, @typeName(T), quote(bytes) });
    }
};

// ---------------------------------------------------------------------------------------------
// Registering UDFs: each generates the export of one UDF.

/// Exports `f` as the map `weft_map_<name>`: `fn (key: Bytes or void, value: Bytes) !Record`.
pub fn map(comptime name: []const u8, comptime f: anytype) void {
    const shape = "fn (key: weft.Bytes or void, value: weft.Bytes) weft.Record or !weft.Record";
    const key_unused = checkRecordFn("map", name, f, 2, Record, shape);
    exportUdf("map", name, key_unused, struct {
        fn call(frame: *Frame) callconv(.c) u32 {
            return glue.run(frame, name, glue.records(f, .map));
        }
    }.call);
}

/// Exports `f` as the flat_map `weft_flat_map_<name>`:
/// `fn (key: Bytes or void, value: Bytes, out: *Emitter) !void`.
pub fn flatMap(comptime name: []const u8, comptime f: anytype) void {
    const shape = "fn (key: weft.Bytes or void, value: weft.Bytes, out: *weft.Emitter) void or !void";
    const key_unused = checkRecordFn("flatMap", name, f, 3, void, shape);
    if (@typeInfo(@TypeOf(f)).@"fn".params[2].type != *Emitter) badShape("flatMap", name, f, shape);
    exportUdf("flat_map", name, key_unused, struct {
        fn call(frame: *Frame) callconv(.c) u32 {
            return glue.run(frame, name, glue.records(f, .flat_map));
        }
    }.call);
}

/// Exports `f` as the filter `weft_filter_<name>`: `fn (key: Bytes or void, value: Bytes) !bool`.
pub fn filter(comptime name: []const u8, comptime f: anytype) void {
    const shape = "fn (key: weft.Bytes or void, value: weft.Bytes) bool or !bool";
    const key_unused = checkRecordFn("filter", name, f, 2, bool, shape);
    exportUdf("filter", name, key_unused, struct {
        fn call(frame: *Frame) callconv(.c) u32 {
            return glue.run(frame, name, glue.filter(f));
        }
    }.call);
}

/// Exports `f` as the reduce `weft_reduce_<name>`, with its combiner `weft_combine_<name>`.
/// `f` is `fn (a: T, b: T) !T` for an integer type `T` (values are decimal integers, parsed and
/// printed by the SDK; a value that is not one fails the call), or
/// `fn (a: Bytes, b: Bytes, out: *Buffer) !void` (write the fold of a and b into `out`, which
/// starts empty; a group of one value is returned as it is).
pub fn reduce(comptime name: []const u8, comptime f: anytype) void {
    const form = comptime reduceForm(name, f);
    exportUdf("reduce", name, false, struct {
        fn call(frame: *Frame) callconv(.c) u32 {
            return glue.run(frame, name, glue.reduce(f, form));
        }
    }.call);
    const Combine = struct {
        var combiner: glue.Combiner(f, form) = .{};
        fn call(frame: *Frame, op: u32) callconv(.c) u32 {
            return glue.run(frame, name, glue.Combine(@TypeOf(combiner)){ .combiner = &combiner, .op = op });
        }
    };
    @export(&Combine.call, .{ .name = "weft_combine_" ++ name });
}

/// Exports `f` as the group_reduce `weft_group_reduce_<name>`:
/// `fn (key: Bytes, values: *Values, out: *Emitter) !void`.
pub fn groupReduce(comptime name: []const u8, comptime f: anytype) void {
    const shape = "fn (key: weft.Bytes, values: *weft.Values, out: *weft.Emitter) void or !void";
    const info = fnInfo("groupReduce", name, f, shape);
    if (info.params.len != 3 or info.params[0].type != Bytes or info.params[1].type != *Values or
        info.params[2].type != *Emitter or Payload(info.return_type.?) != void) badShape("groupReduce", name, f, shape);
    exportUdf("group_reduce", name, false, struct {
        fn call(frame: *Frame) callconv(.c) u32 {
            return glue.run(frame, name, glue.groupReduce(f));
        }
    }.call);
}

/// Exports `call` as `weft_<kind>_<name>`, and states `key=unused` in the `weft.udfs` custom
/// section (ABI.md §3b) when asked. Zig has no attribute for a custom section, but LLVM's wasm
/// assembler makes one of a `.custom_section.` section, and wasm-ld concatenates those.
fn exportUdf(comptime kind: []const u8, comptime name: []const u8, comptime key_unused: bool, comptime call: anytype) void {
    checkName(name);
    @export(&call, .{ .name = "weft_" ++ kind ++ "_" ++ name });
    if (key_unused) {
        // Container-level assembly: a struct's `comptime` block, not the function's.
        _ = struct {
            comptime {
                asm (".section .custom_section.weft.udfs,\"\",@\n" ++
                        ".ascii \"1 " ++ name ++ " key=unused\\n\"\n");
            }
        };
    }
}

fn checkName(comptime name: []const u8) void {
    if (name.len == 0) @compileError("a Weft UDF needs a name");
    for (name) |c| switch (c) {
        'a'...'z', 'A'...'Z', '0'...'9', '_' => {},
        else => @compileError("the UDF name \"" ++ name ++ "\" is not ASCII letters, digits and _"),
    };
}

fn fnInfo(comptime what: []const u8, comptime name: []const u8, comptime f: anytype, comptime shape: []const u8) std.builtin.Type.Fn {
    return switch (@typeInfo(@TypeOf(f))) {
        .@"fn" => |info| info,
        else => badShape(what, name, f, shape),
    };
}

fn badShape(comptime what: []const u8, comptime name: []const u8, comptime f: anytype, comptime shape: []const u8) noreturn {
    @compileError("weft." ++ what ++ "(\"" ++ name ++ "\", f): f must be " ++ shape ++ ", not " ++ @typeName(@TypeOf(f)));
}

/// Checks a map, flat_map or filter: `params` parameters, the first a key (`Bytes`, or `void`
/// when unused), the second the value, and returning `Ret` or an error union of it. Returns
/// whether the key is unused.
fn checkRecordFn(comptime what: []const u8, comptime name: []const u8, comptime f: anytype, comptime params: usize, comptime Ret: type, comptime shape: []const u8) bool {
    const info = fnInfo(what, name, f, shape);
    if (info.params.len != params or info.params[1].type != Bytes or info.return_type == null or
        Payload(info.return_type.?) != Ret) badShape(what, name, f, shape);
    const key = info.params[0].type;
    if (key != Bytes and key != void) badShape(what, name, f, shape);
    return key == void;
}

/// A function's result without its error set.
fn Payload(comptime R: type) type {
    return switch (@typeInfo(R)) {
        .error_union => |eu| eu.payload,
        else => R,
    };
}

const ReduceForm = union(enum) {
    /// Values are decimal integers of this type.
    int: type,
    bytes,
};

fn reduceForm(comptime name: []const u8, comptime f: anytype) ReduceForm {
    const shape = "fn (a: T, b: T) T or !T with T an integer type, or " ++
        "fn (a: weft.Bytes, b: weft.Bytes, out: *weft.Buffer) void or !void";
    const info = fnInfo("reduce", name, f, shape);
    const ret = Payload(info.return_type orelse badShape("reduce", name, f, shape));
    if (info.params.len == 2) {
        const T = info.params[0].type orelse badShape("reduce", name, f, shape);
        if (@typeInfo(T) != .int or @typeInfo(T).int.bits > 64 or info.params[1].type != T or ret != T)
            badShape("reduce", name, f, shape);
        return .{ .int = T };
    }
    if (info.params.len == 3 and info.params[0].type == Bytes and info.params[1].type == Bytes and
        info.params[2].type == *Buffer and ret == void) return .bytes;
    badShape("reduce", name, f, shape);
}

// ---------------------------------------------------------------------------------------------
// The ABI: the call frame, the exports every module has, and the glue between a call and a UDF.

/// The 56-byte call frame (ABI.md §4).
const Frame = extern struct {
    in_count: u32,
    in_keys_offsets: u32,
    in_keys_data: u32,
    in_values_offsets: u32,
    in_values_data: u32,
    in_groups: u32,
    out_count: u32,
    out_keys_offsets: u32,
    out_keys_data: u32,
    out_values_offsets: u32,
    out_values_data: u32,
    out_keep: u32,
    error_ptr: u32,
    error_len: u32,
};

comptime {
    if (@sizeOf(Frame) != 56) @compileError("the call frame is 56 bytes");
    @export(&weftAbiVersion, .{ .name = "weft_abi_version" });
    @export(&weftAlloc, .{ .name = "weft_alloc" });
    @export(&weftFree, .{ .name = "weft_free" });
}

fn weftAbiVersion() callconv(.c) u32 {
    return abi_version;
}

/// Where a zero-byte block lives: any non-zero aligned address does.
var zero_sized: u64 align(8) = 0;

fn weftAlloc(size: u32, alignment: u32) callconv(.c) u32 {
    if (alignment == 0 or !std.math.isPowerOfTwo(alignment)) return 0;
    if (size == 0) return if (alignment <= 8) @intFromPtr(&zero_sized) else alignment;
    const block = allocator.rawAlloc(size, .fromByteUnits(alignment), @returnAddress()) orelse return 0;
    return @intFromPtr(block);
}

fn weftFree(ptr: u32, size: u32, alignment: u32) callconv(.c) void {
    if (ptr == 0 or size == 0 or alignment == 0 or !std.math.isPowerOfTwo(alignment)) return;
    const block: [*]u8 = @ptrFromInt(ptr);
    allocator.rawFree(block[0..size], .fromByteUnits(alignment), @returnAddress());
}

const pages = struct {
    const page = 64 * 1024;
    const small = std.heap.wasm_allocator;

    const vtable: std.mem.Allocator.VTable = .{ .alloc = alloc, .resize = resize, .remap = remap, .free = free };

    /// A run of free pages: `start` and `count` in pages.
    const Run = struct { start: usize, count: usize };

    /// The free runs, by address, none adjacent to another. Past 1024 runs (a memory in shreds)
    /// a freed run is forgotten rather than tracked: leaked, never corrupted.
    var runs: [1024]Run = undefined;
    var len: usize = 0;

    fn isBig(bytes: usize, alignment: std.mem.Alignment) bool {
        return bytes >= page and alignment.toByteUnits() <= page;
    }

    fn count(bytes: usize) usize {
        return (bytes + (page - 1)) / page;
    }

    fn alloc(_: *anyopaque, bytes: usize, alignment: std.mem.Alignment, ret: usize) ?[*]u8 {
        if (!isBig(bytes, alignment)) return small.rawAlloc(bytes, alignment, ret);
        if (bytes > std.math.maxInt(usize) - page) return null;
        const start = take(count(bytes)) orelse return null;
        return @ptrFromInt(start * page);
    }

    fn free(_: *anyopaque, memory: []u8, alignment: std.mem.Alignment, ret: usize) void {
        if (!isBig(memory.len, alignment)) return small.rawFree(memory, alignment, ret);
        give(@intFromPtr(memory.ptr) / page, count(memory.len));
    }

    /// Resizes in place; never across the 64 KiB line, where `free` would ask the wrong allocator.
    fn resize(_: *anyopaque, memory: []u8, alignment: std.mem.Alignment, new_len: usize, ret: usize) bool {
        const was_big = isBig(memory.len, alignment);
        if (was_big != isBig(new_len, alignment)) return false;
        if (!was_big) return small.rawResize(memory, alignment, new_len, ret);
        if (new_len > std.math.maxInt(usize) - page) return false;
        const start = @intFromPtr(memory.ptr) / page;
        const old = count(memory.len);
        const new = count(new_len);
        if (new <= old) {
            if (new < old) give(start + new, old - new);
            return true;
        }
        return extend(start + old, new - old);
    }

    fn remap(ctx: *anyopaque, memory: []u8, alignment: std.mem.Alignment, new_len: usize, ret: usize) ?[*]u8 {
        return if (resize(ctx, memory, alignment, new_len, ret)) memory.ptr else null;
    }

    fn memoryEnd() usize {
        return @wasmMemorySize(0);
    }

    fn grow(n: usize) bool {
        return @wasmMemoryGrow(0, n) >= 0;
    }

    /// `n` pages: the first free run large enough, else the last run if it ends the memory and
    /// the memory grown by the rest, else new pages at the end.
    fn take(n: usize) ?usize {
        for (runs[0..len], 0..) |*run, i| {
            if (run.count < n) continue;
            const start = run.start;
            run.start += n;
            run.count -= n;
            if (run.count == 0) remove(i);
            return start;
        }
        if (len > 0 and runs[len - 1].start + runs[len - 1].count == memoryEnd()) {
            const last = runs[len - 1];
            if (!grow(n - last.count)) return null;
            len -= 1;
            return last.start;
        }
        const old = @wasmMemoryGrow(0, n);
        return if (old < 0) null else @intCast(old);
    }

    /// Adds the `n` pages at `at` to a block that ends there: from the free run there, or by
    /// growing the memory when the block (or that run) ends it.
    fn extend(at: usize, n: usize) bool {
        for (runs[0..len], 0..) |*run, i| {
            if (run.start != at) continue;
            if (run.count > n) {
                run.start += n;
                run.count -= n;
                return true;
            }
            if (run.count == n or (run.start + run.count == memoryEnd() and grow(n - run.count))) {
                remove(i);
                return true;
            }
            return false;
        }
        return at == memoryEnd() and grow(n);
    }

    /// Returns the `n` pages at `start` to the free runs, merged with their neighbours.
    fn give(start: usize, n: usize) void {
        if (n == 0) return;
        var i: usize = 0;
        while (i < len and runs[i].start < start) i += 1;
        const joins_prev = i > 0 and runs[i - 1].start + runs[i - 1].count == start;
        const joins_next = i < len and start + n == runs[i].start;
        if (joins_prev and joins_next) {
            runs[i - 1].count += n + runs[i].count;
            remove(i);
        } else if (joins_prev) {
            runs[i - 1].count += n;
        } else if (joins_next) {
            runs[i].start = start;
            runs[i].count += n;
        } else if (len < runs.len) {
            std.mem.copyBackwards(Run, runs[i + 1 .. len + 1], runs[i..len]);
            runs[i] = .{ .start = start, .count = n };
            len += 1;
        }
    }

    fn remove(i: usize) void {
        std.mem.copyForwards(Run, runs[i .. len - 1], runs[i + 1 .. len]);
        len -= 1;
    }
};

const glue = struct {
    /// The buffers the host reads after a call: one set for the whole module, since the host
    /// copies a call's output before its next call into the module (ABI.md §4, "Output rules").
    var out: Emitter = .{};
    var keep: std.ArrayListUnmanaged(u8) = .{};
    var message_buf: [10 * 1024]u8 = undefined;

    /// Why a call stopped, set where it stopped.
    var stop: struct {
        /// "record" or "group", with its index in the batch; null for the call as a whole.
        unit: ?[]const u8 = null,
        index: usize = 0,
        err: anyerror = error.UdfFailed,
        /// Set when the host's input breaks the ABI.
        abi: ?[]const u8 = null,
    } = .{};

    const Stop = error{Stop};

    fn stopAt(unit: []const u8, index: usize, err: anyerror) Stop {
        stop = .{ .unit = unit, .index = index, .err = err };
        return error.Stop;
    }

    fn stopCall(err: anyerror) Stop {
        stop = .{ .err = err };
        return error.Stop;
    }

    fn stopAbi(message: []const u8) Stop {
        stop = .{ .abi = message };
        return error.Stop;
    }

    /// What a successful call's output is.
    const Output = union(enum) {
        records,
        keep,
        values,
        /// A combiner's fold: the bytes it holds.
        held: usize,
    };

    /// Runs one call: `body` reads the frame's input and fills the output buffers.
    fn run(frame: *Frame, comptime udf: []const u8, body: anytype) u32 {
        const input = frame.*;
        fail_len = 0;
        const result = body.run(&input);
        const output = result catch {
            const message = describe(udf);
            frame.error_ptr = @intFromPtr(message.ptr);
            frame.error_len = @intCast(message.len);
            return 1;
        };
        switch (output) {
            .records => {
                frame.out_count = @intCast(out.len());
                frame.out_keys_offsets = @intFromPtr(out.keys.offsets.items.ptr);
                frame.out_keys_data = @intFromPtr(out.keys.data.items.ptr);
                frame.out_values_offsets = @intFromPtr(out.values.offsets.items.ptr);
                frame.out_values_data = @intFromPtr(out.values.data.items.ptr);
            },
            .values => {
                frame.out_count = @intCast(out.values.count());
                frame.out_values_offsets = @intFromPtr(out.values.offsets.items.ptr);
                frame.out_values_data = @intFromPtr(out.values.data.items.ptr);
            },
            .keep => frame.out_keep = @intFromPtr(keep.items.ptr),
            .held => |bytes| frame.out_count = @intCast(@min(bytes, std.math.maxInt(u32))),
        }
        return 0;
    }

    /// The message of the call that just stopped.
    fn describe(comptime udf: []const u8) []const u8 {
        var stream = std.io.fixedBufferStream(&message_buf);
        const w = stream.writer();
        write: {
            w.writeAll(udf ++ ": ") catch break :write;
            if (stop.abi) |abi| {
                w.print("the input breaks the guest ABI: {s}", .{abi}) catch break :write;
                break :write;
            }
            if (stop.unit) |unit| w.print("{s} {d}: ", .{ unit, stop.index }) catch break :write;
            if (stop.err == error.UdfFailed and fail_len > 0) {
                w.writeAll(fail_buf[0..fail_len]) catch break :write;
            } else if (stop.err == error.OutOfMemory) {
                w.writeAll("out of memory") catch break :write;
            } else {
                w.print("error.{s}", .{@errorName(stop.err)}) catch break :write;
            }
        }
        return stream.getWritten();
    }

    /// Calls a UDF, its result as an error union whatever it returns.
    inline fn attempt(comptime f: anytype, args: anytype) anyerror!Payload(@typeInfo(@TypeOf(f)).@"fn".return_type.?) {
        return @call(.auto, f, args);
    }

    /// The key argument: the key, or `{}` for a UDF whose key parameter is `void`.
    inline fn keyArg(comptime f: anytype, key: Bytes) @typeInfo(@TypeOf(f)).@"fn".params[0].type.? {
        return if (@typeInfo(@TypeOf(f)).@"fn".params[0].type.? == void) {} else key;
    }

    /// The memory's size in bytes.
    fn memorySize() u64 {
        return @as(u64, @wasmMemorySize(0)) * 65536;
    }

    /// `count` strings at `offsets`/`data`, checked to lie in memory.
    fn array(count: u32, offsets: u32, data: u32) Stop!Array {
        if (count == 0) return Array.empty;
        if (offsets == 0 or offsets % 4 != 0) return stopAbi("an offsets array is null or not 4-aligned");
        const size = memorySize();
        if (@as(u64, offsets) + 4 * (@as(u64, count) + 1) > size) return stopAbi("an offsets array lies outside the guest's memory");
        const ends: [*]const u32 = @ptrFromInt(offsets);
        const last = ends[count];
        if (last > 0 and (data == 0 or @as(u64, data) + last > size)) return stopAbi("a data buffer lies outside the guest's memory");
        return .{ .offsets = ends, .data = @ptrFromInt(@max(data, 1)) };
    }

    /// The group boundaries (`count + 1` value indexes) and the values of a grouped call.
    fn grouped(input: *const Frame) Stop!struct { keys: Array, groups: [*]const u32, values: Array } {
        if (input.in_count == 0) return .{ .keys = Array.empty, .groups = Array.empty.offsets, .values = Array.empty };
        const count = input.in_count;
        const keys = try array(count, input.in_keys_offsets, input.in_keys_data);
        const at = input.in_groups;
        if (at == 0 or at % 4 != 0 or @as(u64, at) + 4 * (@as(u64, count) + 1) > memorySize())
            return stopAbi("in_groups is null, not 4-aligned or outside the guest's memory");
        const groups: [*]const u32 = @ptrFromInt(at);
        const values = try array(groups[count], input.in_values_offsets, input.in_values_data);
        return .{ .keys = keys, .groups = groups, .values = values };
    }

    const RecordKind = enum { map, flat_map };

    fn records(comptime f: anytype, comptime kind: RecordKind) type {
        return struct {
            fn run(input: *const Frame) Stop!Output {
                out.clear() catch |e| return stopCall(e);
                const count = input.in_count;
                const keys = try array(count, input.in_keys_offsets, input.in_keys_data);
                const values = try array(count, input.in_values_offsets, input.in_values_data);
                for (0..count) |i| {
                    const key = keyArg(f, keys.get(i));
                    switch (kind) {
                        .flat_map => attempt(f, .{ key, values.get(i), &out }) catch |e| return stopAt("record", i, e),
                        .map => {
                            const record = attempt(f, .{ key, values.get(i) }) catch |e| return stopAt("record", i, e);
                            out.emit(record.key, record.value) catch |e| return stopAt("record", i, e);
                        },
                    }
                }
                return .records;
            }
        };
    }

    fn filter(comptime f: anytype) type {
        return struct {
            fn run(input: *const Frame) Stop!Output {
                const count = input.in_count;
                keep.resize(allocator, @max(count, 1)) catch |e| return stopCall(e);
                const keys = try array(count, input.in_keys_offsets, input.in_keys_data);
                const values = try array(count, input.in_values_offsets, input.in_values_data);
                for (0..count) |i| {
                    const kept = attempt(f, .{ keyArg(f, keys.get(i)), values.get(i) }) catch |e| return stopAt("record", i, e);
                    keep.items[i] = @intFromBool(kept);
                }
                return .keep;
            }
        };
    }

    fn groupReduce(comptime f: anytype) type {
        return struct {
            fn run(input: *const Frame) Stop!Output {
                out.clear() catch |e| return stopCall(e);
                const in = try grouped(input);
                for (0..input.in_count) |g| {
                    var values: Values = .{ .array = in.values, .first = in.groups[g], .end = in.groups[g + 1], .at = in.groups[g] };
                    if (values.end < values.first) return stopAbi("the group indexes decrease");
                    attempt(f, .{ in.keys.get(g), &values, &out }) catch |e| return stopAt("group", g, e);
                }
                return .records;
            }
        };
    }

    /// `bytes` as a decimal `T`, or a failure naming it.
    inline fn decimalValue(comptime T: type, bytes: Bytes) Error!T {
        return parseDecimal(T, bytes) orelse notDecimal(T, bytes);
    }

    fn notDecimal(comptime T: type, bytes: Bytes) Error {
        return fail("the value {} is not a decimal {s}", .{ quote(bytes), @typeName(T) });
    }

    fn reduce(comptime f: anytype, comptime form: ReduceForm) type {
        return struct {
            /// Two buffers a fold of bytes alternates between: the running value and the next.
            var scratch: [2]Buffer = .{ .{}, .{} };

            fn run(input: *const Frame) Stop!Output {
                out.clear() catch |e| return stopCall(e);
                const in = try grouped(input);
                for (0..input.in_count) |g| {
                    const first = in.groups[g];
                    const end = in.groups[g + 1];
                    if (end <= first) return stopAbi("a reduce group has no value");
                    switch (form) {
                        .int => |T| {
                            var acc = decimalValue(T, in.values.get(first)) catch |e| return stopAt("group", g, e);
                            for (first + 1..end) |v| {
                                const value = decimalValue(T, in.values.get(v)) catch |e| return stopAt("group", g, e);
                                acc = attempt(f, .{ acc, value }) catch |e| return stopAt("group", g, e);
                            }
                            var buf: [decimal_max]u8 = undefined;
                            out.values.push(formatDecimal(&buf, acc)) catch |e| return stopAt("group", g, e);
                        },
                        .bytes => {
                            var acc = in.values.get(first);
                            var next: usize = 0;
                            for (first + 1..end) |v| {
                                scratch[next].clear();
                                attempt(f, .{ acc, in.values.get(v), &scratch[next] }) catch |e| return stopAt("group", g, e);
                                acc = scratch[next].items();
                                next ^= 1;
                            }
                            out.values.push(acc) catch |e| return stopAt("group", g, e);
                        },
                    }
                }
                return .values;
            }
        };
    }

    /// The combiner of a `reduce` (ABI.md §3a): each key's running value, held from call to call
    /// in an open-addressing hash table.
    ///
    /// A slot holds the key's length and its first and last 8 bytes (so a probe for a key of up
    /// to 16 bytes, most words, never leaves the table) and the running value: for the integer
    /// form, the number itself, so a fold parses the record's value, adds, and moves on; for the
    /// bytes form, where its bytes sit in an arena, in a room a little larger than itself so a
    /// value that grows a little is rewritten in place.
    fn Combiner(comptime f: anytype, comptime form: ReduceForm) type {
        const Held = switch (form) {
            .int => |T| T,
            .bytes => Room,
        };
        return struct {
            const Self = @This();
            const Slot = struct {
                /// The key's first 8 bytes, zero-padded.
                head: u64,
                /// A key over 8 bytes long: its last 8 (overlapping `head` under 16); else 0.
                tail: u64,
                /// The key's length + 1; 0 for an empty slot.
                tag: u32,
                /// Where the key's bytes are in `keys`.
                key_at: u32,
                value: Held,
            };

            slots: []Slot = &.{},
            used: usize = 0,
            keys: std.ArrayListUnmanaged(u8) = .{},
            /// The bytes form's running values.
            values: std.ArrayListUnmanaged(u8) = .{},
            /// The bytes form's fold result.
            scratch: Buffer = .{},

            fn find(self: *Self, key: Bytes) error{OutOfMemory}!struct { slot: *Slot, new: bool } {
                if (self.used * 4 >= self.slots.len * 3) try self.grow();
                const head = prefix(key);
                const tail = suffix(key);
                const tag: u32 = @intCast(key.len + 1);
                const mask = self.slots.len - 1;
                var i: usize = @intCast(hashKey(key, head, tail) & mask);
                while (true) : (i = (i + 1) & mask) {
                    const slot = &self.slots[i];
                    if (slot.tag == tag and slot.head == head and slot.tail == tail and
                        (key.len <= 16 or std.mem.eql(u8, self.keys.items[slot.key_at + 8 ..][0 .. key.len - 16], key[8 .. key.len - 8])))
                        return .{ .slot = slot, .new = false };
                    if (slot.tag == 0) {
                        const at = self.keys.items.len;
                        try self.keys.appendSlice(allocator, key);
                        slot.* = .{ .head = head, .tail = tail, .tag = tag, .key_at = @intCast(at), .value = undefined };
                        self.used += 1;
                        return .{ .slot = slot, .new = true };
                    }
                }
            }

            fn grow(self: *Self) error{OutOfMemory}!void {
                const old = self.slots;
                const slots = try allocator.alloc(Slot, @max(1024, old.len * 2));
                @memset(std.mem.sliceAsBytes(slots), 0);
                const mask = slots.len - 1;
                for (old) |slot| {
                    if (slot.tag == 0) continue;
                    const key = self.keys.items[slot.key_at..][0 .. slot.tag - 1];
                    var i: usize = @intCast(hashKey(key, slot.head, slot.tail) & mask);
                    while (slots[i].tag != 0) i = (i + 1) & mask;
                    slots[i] = slot;
                }
                allocator.free(old);
                self.slots = slots;
            }

            /// Bytes held, as allocated: what the host weighs against its budget.
            fn held(self: *const Self) usize {
                return self.slots.len * @sizeOf(Slot) + self.keys.capacity + self.values.capacity + self.scratch.list.capacity;
            }

            /// Frees everything: a drain comes when the combiner is large, or at the end.
            fn reset(self: *Self) void {
                allocator.free(self.slots);
                self.keys.deinit(allocator);
                self.values.deinit(allocator);
                self.scratch.deinit();
                self.* = .{};
            }

            fn fold(self: *Self, input: *const Frame) Stop!void {
                const count = input.in_count;
                const keys = try array(count, input.in_keys_offsets, input.in_keys_data);
                const values = try array(count, input.in_values_offsets, input.in_values_data);
                for (0..count) |i| {
                    const value = values.get(i);
                    switch (form) {
                        .int => |T| {
                            const number = decimalValue(T, value) catch |e| return stopAt("record", i, e);
                            const hit = self.find(keys.get(i)) catch |e| return stopAt("record", i, e);
                            hit.slot.value = if (hit.new) number else attempt(f, .{ hit.slot.value, number }) catch |e| return stopAt("record", i, e);
                        },
                        .bytes => {
                            const hit = self.find(keys.get(i)) catch |e| return stopAt("record", i, e);
                            var result = value;
                            if (!hit.new) {
                                const room = hit.slot.value;
                                self.scratch.clear();
                                attempt(f, .{ self.values.items[room.at..][0..room.len], value, &self.scratch }) catch |e| return stopAt("record", i, e);
                                result = self.scratch.items();
                            }
                            self.store(&hit.slot.value, result, hit.new) catch |e| return stopAt("record", i, e);
                        },
                    }
                }
            }

            /// Writes a key's new running value, in its room when it fits.
            fn store(self: *Self, room: *Room, result: Bytes, new: bool) error{OutOfMemory}!void {
                if (!new and result.len <= room.cap) {
                    const at = self.values.items[room.at..][0..result.len];
                    // A fold's result never aliases its room: it is in `scratch`.
                    @memcpy(at, result);
                    room.len = @intCast(result.len);
                    return;
                }
                // New or outgrown: a room at the end, twice as large as an outgrown one, so a
                // value that keeps growing moves a logarithmic number of times.
                const cap = std.mem.alignForward(usize, @max(@max(result.len, 1), if (new) 0 else 2 * room.cap), 8);
                const at = self.values.items.len;
                try self.values.ensureUnusedCapacity(allocator, cap);
                self.values.appendSliceAssumeCapacity(result);
                self.values.appendNTimesAssumeCapacity(0, cap - result.len);
                room.* = .{ .at = @intCast(at), .len = @intCast(result.len), .cap = @intCast(cap) };
            }

            /// Describes every key held and its value as output records, and holds nothing after.
            fn drain(self: *Self) Stop!void {
                out.clear() catch |e| return stopCall(e);
                for (self.slots) |slot| {
                    if (slot.tag == 0) continue;
                    const key = self.keys.items[slot.key_at..][0 .. slot.tag - 1];
                    var buf: [decimal_max]u8 = undefined;
                    const value = switch (form) {
                        .int => formatDecimal(&buf, slot.value),
                        .bytes => self.values.items[slot.value.at..][0..slot.value.len],
                    };
                    out.emit(key, value) catch |e| return stopCall(e);
                }
                self.reset();
            }
        };
    }

    const Room = struct { at: u32, len: u32, cap: u32 };

    /// A combiner call: `op` 0 folds the frame's records in, 1 drains.
    fn Combine(comptime C: type) type {
        return struct {
            combiner: *C,
            op: u32,

            fn run(self: @This(), input: *const Frame) Stop!Output {
                switch (self.op) {
                    0 => {
                        self.combiner.fold(input) catch |e| {
                            // The task fails: a half-folded key must never be drained.
                            self.combiner.reset();
                            return e;
                        };
                        return .{ .held = self.combiner.held() };
                    },
                    1 => {
                        try self.combiner.drain();
                        return .records;
                    },
                    else => return stopAbi("unknown combiner op (0 = fold, 1 = drain)"),
                }
            }
        };
    }
};

/// The key's first 8 bytes as a little-endian number, zero-padded, from fixed-size loads
/// (overlapping for keys of 4 to 7 bytes) rather than a copy of variable length.
inline fn prefix(key: Bytes) u64 {
    const n = key.len;
    if (n >= 8) return load64(key.ptr);
    if (n >= 4) return @as(u64, load32(key.ptr)) | @as(u64, load32(key.ptr + n - 4)) << @intCast(8 * (n - 4));
    if (n > 0) return @as(u64, key[0]) | @as(u64, key[n / 2]) << @intCast(8 * (n / 2)) | @as(u64, key[n - 1]) << @intCast(8 * (n - 1));
    return 0;
}

/// The last 8 bytes of a key over 8 bytes long; 0 for a shorter key (whose bytes `prefix` holds).
inline fn suffix(key: Bytes) u64 {
    return if (key.len > 8) load64(key.ptr + key.len - 8) else 0;
}

/// A 64-bit finalizer (two multiply-xorshift rounds): every input bit reaches the low bits, which
/// index the table.
inline fn mix(x: u64) u64 {
    var h = x;
    h ^= h >> 32;
    h *%= 0xd6e8feb86659fd93;
    h ^= h >> 32;
    h *%= 0xd6e8feb86659fd93;
    h ^= h >> 32;
    return h;
}

/// The hash of a key whose `prefix` and `suffix` are `head` and `tail`. Not keyed: a guest has
/// no entropy without WASI's random call, and a crafted key set can only slow its own task.
inline fn hashKey(key: Bytes, head: u64, tail: u64) u64 {
    var h = head ^ (tail *% 0x9e3779b97f4a7c15) ^ (@as(u64, key.len) *% 0xc2b2ae3d27d4eb4f);
    if (key.len > 16) {
        var at: usize = 8;
        while (at + 8 < key.len) : (at += 8) h = mix(h ^ load64(key.ptr + at));
    }
    return mix(h);
}
