//! Log filter over JSON lines: `errors` keeps the records whose top-level `"level"` is the string
//! `"error"`, and `service_msg` turns each into `(service, msg)`. The same module in Rust, C and
//! AssemblyScript sits beside this one (examples/README.md has the exact rules).
//!
//! Build it with `weft udf build examples/logfilter/zig`; it exports `weft_filter_errors` and
//! `weft_map_service_msg`.
//!
//! The host has already checked that every line is one JSON value, so the UDFs only walk the
//! top-level object far enough to find a member: no parse tree, no allocation, and strings are
//! returned as written between their quotes (escapes left as they are).

const std = @import("std");
const weft = @import("weft");
const Bytes = weft.Bytes;

comptime {
    weft.filter("errors", errors);
    weft.map("service_msg", serviceMsg);
}

/// A member's value as far as these UDFs care: a string's bytes as written, or anything else.
const Member = union(enum) {
    string: Bytes,
    other,
};

/// Walks one JSON value that the host has validated; null from a method means the bytes ended
/// or are not what the grammar allows there.
const Scanner = struct {
    bytes: Bytes,
    at: usize = 0,

    fn peek(self: *const Scanner) ?u8 {
        return if (self.at < self.bytes.len) self.bytes[self.at] else null;
    }

    fn skipSpace(self: *Scanner) void {
        while (self.peek()) |c| switch (c) {
            ' ', '\t', '\n', '\r' => self.at += 1,
            else => return,
        };
    }

    /// Consumes `byte` after any spaces.
    fn eat(self: *Scanner, byte: u8) ?void {
        self.skipSpace();
        if (self.peek() != byte) return null;
        self.at += 1;
    }

    /// A string at the cursor: its bytes between the quotes, escapes as written.
    fn string(self: *Scanner) ?Bytes {
        self.eat('"') orelse return null;
        const start = self.at;
        while (self.peek()) |c| switch (c) {
            '\\' => self.at += 2,
            '"' => {
                self.at += 1;
                return self.bytes[start .. self.at - 1];
            },
            else => self.at += 1,
        };
        return null;
    }

    /// Skips any value: a string, an object or array with everything nested in it, or a number,
    /// `true`, `false` or `null`.
    fn skipValue(self: *Scanner) ?void {
        self.skipSpace();
        switch (self.peek() orelse return null) {
            '"' => _ = self.string() orelse return null,
            '{', '[' => {
                var depth: usize = 0;
                while (self.peek()) |c| {
                    switch (c) {
                        '"' => {
                            _ = self.string() orelse return null;
                            continue;
                        },
                        '{', '[' => depth += 1,
                        '}', ']' => {
                            depth -= 1;
                            if (depth == 0) {
                                self.at += 1;
                                return;
                            }
                        },
                        else => {},
                    }
                    self.at += 1;
                }
                return null;
            },
            else => {
                const start = self.at;
                while (self.peek()) |c| switch (c) {
                    ',', '}', ']', ' ', '\t', '\n', '\r' => break,
                    else => self.at += 1,
                };
                if (self.at == start) return null;
            },
        }
    }
};

/// The member `name` of the top-level object in `line`; null when the line is not an object or
/// has no such member (a member of a nested object does not count).
fn member(line: Bytes, name: Bytes) ?Member {
    var s: Scanner = .{ .bytes = line };
    s.eat('{') orelse return null;
    s.skipSpace();
    if (s.peek() == '}') return null;
    while (true) {
        const key = s.string() orelse return null;
        s.eat(':') orelse return null;
        s.skipSpace();
        if (std.mem.eql(u8, key, name)) {
            if (s.peek() != '"') return .other;
            return .{ .string = s.string() orelse return null };
        }
        s.skipValue() orelse return null;
        s.eat(',') orelse return null;
    }
}

/// Keeps a record whose top-level `"level"` is the JSON string `"error"`; the key is not read.
fn errors(_: void, line: Bytes) bool {
    const level = member(line, "level") orelse return false;
    return level == .string and std.mem.eql(u8, level.string, "error");
}

/// The top-level string member `name`, or a failure naming it.
fn stringMember(line: Bytes, name: Bytes) weft.Error!Bytes {
    if (member(line, name)) |m| switch (m) {
        .string => |value| return value,
        .other => {},
    };
    return weft.fail("the record has no string member \"{s}\": {}", .{ name, weft.quote(line) });
}

/// `(service, msg)`: the top-level string members, as written between their quotes.
fn serviceMsg(_: void, line: Bytes) !weft.Record {
    return .{ .key = try stringMember(line, "service"), .value = try stringMember(line, "msg") };
}
