// Log filter over JSON lines: `errors` keeps the records whose top-level `"level"` is the string
// `"error"`, and `service_msg` turns each into `(service, msg)` (examples/README.md has the exact
// rules).
//
// Build it with `weft udf build examples/logfilter/assemblyscript`; it exports
// `weft_filter_errors` and `weft_map_service_msg`.
//
// The host has already checked that every line is one JSON value, so the UDFs only walk the
// top-level object far enough to find a member: no parse tree, no allocation, and strings are
// returned as written between their quotes (escapes left as they are).

import { Bytes, Emitter, fail, filter, map } from "weft-guest";

/** What `member` found: nothing, a string (its bytes in `found`), or a value of another type. */
const enum Member { Missing, String, Other }

/** Walks one JSON value in place. `at` is the cursor; -1 once the input ends too soon. */
class Scanner {
  at: usize = 0;
  end: usize = 0;
  /** The last string read: its bytes between the quotes. */
  string: Bytes = new Bytes();

  @inline peek(): i32 {
    return this.at < this.end ? <i32>load<u8>(this.at) : -1;
  }

  skipSpace(): void {
    while (this.at < this.end) {
      const c = load<u8>(this.at);
      if (c != 0x20 && c != 0x09 && c != 0x0A && c != 0x0D) break;
      this.at++;
    }
  }

  /** Skips spaces, then `byte`: false when something else comes. */
  eat(byte: i32): bool {
    this.skipSpace();
    if (this.peek() != byte) return false;
    this.at++;
    return true;
  }

  /** Reads a string at the cursor into `string`: false when there is none. */
  readString(): bool {
    if (!this.eat(0x22)) return false;
    const start = this.at;
    while (this.at < this.end) {
      const c = load<u8>(this.at);
      if (c == 0x5C) {
        this.at += 2;
      } else if (c == 0x22) {
        this.string.setTo(start, <i32>(this.at - start));
        this.at++;
        return true;
      } else {
        this.at++;
      }
    }
    return false;
  }

  /** Skips any value: a string, an object or array with everything nested in it, or a number,
   *  `true`, `false` or `null`. */
  skipValue(): bool {
    this.skipSpace();
    const c = this.peek();
    if (c == 0x22) return this.readString();
    if (c == 0x7B || c == 0x5B) {
      let depth = 0;
      while (this.at < this.end) {
        const b = load<u8>(this.at);
        if (b == 0x22) {
          if (!this.readString()) return false;
          continue;
        }
        if (b == 0x7B || b == 0x5B) {
          depth++;
        } else if (b == 0x7D || b == 0x5D) {
          depth--;
          if (depth == 0) {
            this.at++;
            return true;
          }
        }
        this.at++;
      }
      return false;
    }
    const start = this.at;
    while (this.at < this.end) {
      const b = load<u8>(this.at);
      if (b == 0x2C || b == 0x7D || b == 0x5D || b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D) break;
      this.at++;
    }
    return this.at > start;
  }

  /** Finds the member `name` of the top-level object in `line` (one in a nested object does not
   *  count); a string's bytes are then in `string`. */
  member(line: Bytes, name: string): Member {
    this.at = line.ptr;
    this.end = line.ptr + <usize>line.length;
    if (!this.eat(0x7B)) return Member.Missing;
    this.skipSpace();
    if (this.peek() == 0x7D) return Member.Missing;
    while (true) {
      if (!this.readString()) return Member.Missing;
      const isName = this.string.equals(name);
      if (!this.eat(0x3A)) return Member.Missing;
      this.skipSpace();
      if (isName) {
        if (this.peek() != 0x22) return Member.Other;
        return this.readString() ? Member.String : Member.Missing;
      }
      if (!this.skipValue()) return Member.Missing;
      this.skipSpace();
      if (this.peek() != 0x2C) return Member.Missing;
      this.at++;
    }
  }
}

const scanner = new Scanner();

/** Keeps a record whose top-level `"level"` is the JSON string `"error"`; the key is ignored. */
function errors(key: Bytes, line: Bytes): bool {
  return scanner.member(line, "level") == Member.String && scanner.string.equals("error");
}

/** The top-level string member `name` of `line`, or a failure naming it. */
function stringMember(line: Bytes, name: string): Bytes {
  if (scanner.member(line, name) != Member.String) {
    fail("the record has no string member \"" + name + "\": " + line.quoted(200));
  }
  return scanner.string;
}

/** `(service, msg)`: the top-level string members, as written between their quotes. */
function serviceMsg(key: Bytes, line: Bytes, out: Emitter): void {
  const keys = out.keyData(), values = out.valueData();
  keys.writeBytes(stringMember(line, "service"));
  values.writeBytes(stringMember(line, "msg"));
  out.endRecord();
}

export function weft_filter_errors(frame: usize): i32 {
  return filter(frame, errors);
}

export function weft_map_service_msg(frame: usize): i32 {
  return map(frame, serviceMsg);
}
