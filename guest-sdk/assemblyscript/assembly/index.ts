// The AssemblyScript SDK of Weft: UDFs written as plain functions over byte views, the batch layout
// of guest-sdk/ABI.md hidden behind a few drivers.
//
//   import { Bytes, Emitter, flatMap } from "weft-guest";
//
//   function splitWords(key: Bytes, line: Bytes, out: Emitter): void { ... out.emit(word, "1"); }
//   export function weft_flat_map_split_words(frame: usize): i32 { return flatMap(frame, splitWords); }
//
// Every UDF is an exported function `weft_<kind>_<name>(frame: usize): i32` (ABI.md §3) whose body
// hands the frame and the user's function to a driver: `map`, `filter`, `flatMap`, `groupReduce`,
// or a `Reducer`'s `reduce` and `combine` (§3a). The drivers read the input in place: a `Bytes` is
// a view of guest memory, not a copy, and the drivers reuse their views from record to record, so
// a callback must copy (`toString`, `toUint8Array`) what it keeps. `weft_alloc`, `weft_free` and
// `weft_abi_version` come from exports.ts, which the build adds as a second entry file.
//
// # Memory
// The module is built with asc's `minimal` runtime: TLSF for memory and a mark-and-sweep collector
// that never runs on its own. Every driver runs it on entry, when no managed object lives on the
// stack, so the garbage of one call is freed at the start of the next. The SDK's own buffers
// (outputs, the combiner's tables) are raw `heap.alloc` blocks the collector never touches: the
// host reads an output after the call returns, and it stays as it is until the next call.
//
// # Errors
// AssemblyScript has no exceptions. A UDF reports a user error with `fail(message)` and returns;
// the driver stops after that record and returns status 1 with the message (ABI.md §5). A `throw`
// (or any `abort`) traps instead, with its message on stderr (see exports.ts).

// ---------------------------------------------------------------------------------------------
// Byte views

/** A view of bytes in guest memory: an input key or value, a CSV field, a word of a line. It does
 *  not own them; views the SDK passes to a callback are valid until the callback returns. */
@final
export class Bytes {
  constructor(
    /** Address of the first byte. */
    public ptr: usize = 0,
    /** Number of bytes. */
    public length: i32 = 0,
  ) {}

  /** Byte `i`, unchecked: `0 <= i < length` is the caller's business. */
  @inline @operator("[]")
  at(i: i32): u8 {
    return load<u8>(this.ptr + <usize>i);
  }

  /** A new view of bytes `start .. end` of this one (clamped). */
  slice(start: i32, end: i32 = i32.MAX_VALUE): Bytes {
    if (end > this.length) end = this.length;
    if (start < 0) start = 0;
    if (start > end) start = end;
    return new Bytes(this.ptr + <usize>start, end - start);
  }

  /** Points this view at bytes `start .. end` of `other` and returns it: no allocation. */
  @inline
  setTo(ptr: usize, length: i32): Bytes {
    this.ptr = ptr;
    this.length = length;
    return this;
  }

  /** The index of the first `byte` at or after `from`, or -1. */
  indexOf(byte: u8, from: i32 = 0): i32 {
    for (let i = from; i < this.length; i++) {
      if (load<u8>(this.ptr + <usize>i) == byte) return i;
    }
    return -1;
  }

  /** Whether the bytes equal `other`'s. */
  equalsBytes(other: Bytes): bool {
    return this.length == other.length && memory.compare(this.ptr, other.ptr, <usize>this.length) == 0;
  }

  /** Whether the bytes are the UTF-8 encoding of `text`: no allocation when `text` is ASCII. */
  equals(text: string): bool {
    const n = text.length;
    const chars = changetype<usize>(text);
    let ascii = true;
    for (let i = 0; i < n; i++) {
      if (load<u16>(chars + (<usize>i << 1)) >= 0x80) { ascii = false; break; }
    }
    if (ascii) {
      if (n != this.length) return false;
      for (let i = 0; i < n; i++) {
        if (<u32>load<u16>(chars + (<usize>i << 1)) != <u32>load<u8>(this.ptr + <usize>i)) return false;
      }
      return true;
    }
    const utf8 = String.UTF8.encode(text);
    return utf8.byteLength == this.length
      && memory.compare(changetype<usize>(utf8), this.ptr, <usize>this.length) == 0;
  }

  /** Byte-wise order (shorter first on a common prefix): negative, zero or positive. */
  compare(other: Bytes): i32 {
    const n = min(this.length, other.length);
    const c = memory.compare(this.ptr, other.ptr, <usize>n);
    return c != 0 ? c : this.length - other.length;
  }

  /** The bytes decoded as UTF-8 (invalid sequences replaced). */
  toString(): string {
    return String.UTF8.decodeUnsafe(this.ptr, <usize>this.length);
  }

  /** A copy of the bytes. */
  toUint8Array(): Uint8Array {
    const copy = new Uint8Array(this.length);
    memory.copy(copy.dataStart, this.ptr, <usize>this.length);
    return copy;
  }

  /** The bytes as an unsigned decimal integer (ASCII digits only, fitting a u64). On anything
   *  else it calls `fail("<what> is not a decimal integer")` (or `is out of range for u64`) and
   *  returns 0: check `failed()` before using the result, or just return. */
  decimal(what: string = "the value"): u64 {
    const value = parseDecimal(this.ptr, this.length);
    if (decimalError != DecimalError.None) failDecimal(what);
    return value;
  }

  /** The bytes as text for a message: at most `max` bytes, quoted, invalid UTF-8 replaced. */
  quoted(max: i32 = 80): string {
    const shown = this.length > max ? this.slice(0, max).toString() + "..." : this.toString();
    return "\"" + shown + "\"";
  }

  /** A view of a string's UTF-8 bytes (a copy of them, owned by the view's ArrayBuffer). */
  static fromString(text: string): Bytes {
    return Bytes.fromBuffer(String.UTF8.encode(text));
  }

  /** A view of an ArrayBuffer's bytes; the caller keeps the buffer alive. */
  static fromBuffer(buffer: ArrayBuffer): Bytes {
    return new Bytes(changetype<usize>(buffer), buffer.byteLength);
  }
}

/** Why the last `parseDecimal` failed. */
const enum DecimalError { None, NotDecimal, OutOfRange }

let decimalError = DecimalError.None;

/** `length` bytes at `ptr` as an unsigned decimal u64; on an error 0, the reason in
 *  `decimalError` (no message is made unless there is an error: this runs once per record). */
@inline
function parseDecimal(ptr: usize, length: i32): u64 {
  decimalError = DecimalError.None;
  if (length == 0) { decimalError = DecimalError.NotDecimal; return 0; }
  let value: u64 = 0;
  if (length <= 19) {
    // 19 digits always fit a u64: no overflow check in the loop.
    for (let i = 0; i < length; i++) {
      const digit = <u32>load<u8>(ptr + <usize>i) - 0x30;
      if (digit > 9) { decimalError = DecimalError.NotDecimal; return 0; }
      value = value * 10 + digit;
    }
    return value;
  }
  let overflow = false;
  for (let i = 0; i < length; i++) {
    const digit = <u32>load<u8>(ptr + <usize>i) - 0x30;
    if (digit > 9) { decimalError = DecimalError.NotDecimal; return 0; }
    // value * 10 + digit > u64::MAX?
    if (value > 1844674407370955161 || (value == 1844674407370955161 && digit > 5)) overflow = true;
    value = value * 10 + digit;
  }
  if (overflow) { decimalError = DecimalError.OutOfRange; return 0; }
  return value;
}

/** Reports the last `parseDecimal`'s error about `what`. */
function failDecimal(what: string): void {
  fail(what + (decimalError == DecimalError.OutOfRange
    ? " is out of range for u64"
    : " is not a decimal integer"));
}

// ---------------------------------------------------------------------------------------------
// Growable raw buffers

/** A growable byte buffer in raw heap memory (not managed by the collector): where outputs are
 *  built. Codecs write into one (`Codec.encode`). */
@final
export class Buffer {
  /** Address of the bytes. */
  ptr: usize = 0;
  /** Bytes written. */
  length: usize = 0;
  /** Bytes allocated. */
  capacity: usize = 0;

  /** Makes room for `extra` more bytes and returns where they go (`length` is unchanged). */
  @inline
  reserve(extra: usize): usize {
    const need = this.length + extra;
    if (need > this.capacity) this.grow(need);
    return this.ptr + this.length;
  }

  private grow(need: usize): void {
    let capacity = max<usize>(this.capacity << 1, 256);
    // Doubling past 1 GiB would wrap: ask for exactly what is needed (TLSF refuses over 1 GiB).
    if (need > 1 << 30) capacity = need;
    while (capacity < need) capacity <<= 1;
    this.ptr = this.ptr == 0 ? heap.alloc(capacity) : heap.realloc(this.ptr, capacity);
    this.capacity = capacity;
  }

  /** Frees the memory when it holds more than `keep` bytes (never call it while the host may still
   *  read the bytes: only at the start of a call). */
  shrink(keep: usize): void {
    if (this.capacity > keep) {
      heap.free(this.ptr);
      this.ptr = 0;
      this.capacity = 0;
    }
    this.length = 0;
  }

  @inline
  clear(): void {
    this.length = 0;
  }

  @inline
  writeByte(byte: u8): void {
    store<u8>(this.reserve(1), byte);
    this.length += 1;
  }

  @inline
  writeU32(value: u32): void {
    store<u32>(this.reserve(4), value);
    this.length += 4;
  }

  /** Appends `length` bytes from address `ptr`. */
  @inline
  writeRaw(ptr: usize, length: usize): void {
    memory.copy(this.reserve(length), ptr, length);
    this.length += length;
  }

  @inline
  writeBytes(bytes: Bytes): void {
    this.writeRaw(bytes.ptr, <usize>bytes.length);
  }

  /** Appends `text` as UTF-8. */
  writeString(text: string): void {
    const n = text.length;
    const chars = changetype<usize>(text);
    let to = this.reserve(<usize>n * 3);
    // ASCII is the common case: one byte per char, no call into the UTF-8 encoder.
    let i = 0;
    for (; i < n; i++) {
      const c = load<u16>(chars + (<usize>i << 1));
      if (c >= 0x80) break;
      store<u8>(to + <usize>i, <u8>c);
    }
    if (i == n) { this.length += <usize>n; return; }
    // Lone surrogates (not text) become U+FFFD rather than invalid UTF-8.
    const written = String.UTF8.encodeUnsafe(
      chars + (<usize>i << 1), n - i, to + <usize>i, false, String.UTF8.ErrorMode.REPLACE);
    this.length += <usize>i + written;
  }

  /** Appends `value` in decimal, without leading zeros. */
  writeDecimal(value: u64): void {
    let digits = 1;
    for (let v = value; v >= 10; v /= 10) digits++;
    const at = this.reserve(<usize>digits);
    let v = value;
    for (let i = digits - 1; i >= 0; i--) {
      store<u8>(at + <usize>i, <u8>(0x30 + <u32>(v % 10)));
      v /= 10;
    }
    this.length += <usize>digits;
  }

  /** Appends `value`: Bytes, string, Uint8Array, StaticArray<u8> or ArrayBuffer. */
  @inline
  write<T>(value: T): void {
    if (value instanceof Bytes) {
      this.writeBytes(changetype<Bytes>(value));
    } else if (isString<T>()) {
      this.writeString(changetype<string>(value));
    } else if (value instanceof Uint8Array) {
      const a = changetype<Uint8Array>(value);
      this.writeRaw(a.dataStart, <usize>a.length);
    } else if (value instanceof StaticArray<u8>) {
      this.writeRaw(changetype<usize>(value), <usize>changetype<StaticArray<u8>>(value).length);
    } else if (value instanceof ArrayBuffer) {
      this.writeRaw(changetype<usize>(value), <usize>changetype<ArrayBuffer>(value).byteLength);
    } else {
      ERROR("Emitter/Buffer.write takes Bytes, string, Uint8Array, StaticArray<u8> or ArrayBuffer");
    }
  }
}

/** One output array (ABI.md §4, "Binary arrays"): offsets and data. */
@final
class BinaryOut {
  offsets: Buffer = new Buffer();
  data: Buffer = new Buffer();

  @inline
  start(): void {
    this.offsets.clear();
    this.data.clear();
    this.offsets.writeU32(0);
  }

  /** Ends the current item: its bytes are those written to `data` since the last one. */
  @inline
  end(): void {
    this.offsets.writeU32(<u32>this.data.length);
  }

  /** Frees what a large batch left behind (at the start of a call only). */
  shrink(): void {
    this.offsets.shrink(KEEP_BYTES);
    this.data.shrink(KEEP_BYTES);
  }
}

/** Output buffers over this size are freed at the start of the next call, so that one huge batch
 *  does not pin its memory for the rest of the task. */
const KEEP_BYTES: usize = 16 << 20;

// ---------------------------------------------------------------------------------------------
// The call frame (ABI.md §4)

@inline const IN_COUNT: usize = 0;
@inline const IN_KEYS_OFFSETS: usize = 4;
@inline const IN_KEYS_DATA: usize = 8;
@inline const IN_VALUES_OFFSETS: usize = 12;
@inline const IN_VALUES_DATA: usize = 16;
@inline const IN_GROUPS: usize = 20;
@inline const OUT_COUNT: usize = 24;
@inline const OUT_KEYS_OFFSETS: usize = 28;
@inline const OUT_KEYS_DATA: usize = 32;
@inline const OUT_VALUES_OFFSETS: usize = 36;
@inline const OUT_VALUES_DATA: usize = 40;
@inline const OUT_KEEP: usize = 44;
@inline const ERROR_PTR: usize = 48;
@inline const ERROR_LEN: usize = 52;

@inline function field(frame: usize, at: usize): usize {
  return <usize>load<u32>(frame + at);
}

@inline function setField(frame: usize, at: usize, value: usize): void {
  store<u32>(frame + at, <u32>value);
}

/** Points `view` at item `i` of the binary array (`offsets`, `data`). */
@inline function item(view: Bytes, offsets: usize, data: usize, i: u32): Bytes {
  const start = load<u32>(offsets + (<usize>i << 2));
  const end = load<u32>(offsets + (<usize>i << 2), 4);
  return view.setTo(data + <usize>start, <i32>(end - start));
}

// ---------------------------------------------------------------------------------------------
// Errors

/** The message of the current call's error, UTF-8; null while there is none. */
let errorMessage: ArrayBuffer | null = null;

/** Reports a user error (a malformed record, say): the driver stops after the current record and
 *  the call returns status 1 with `message`, which fails the job (ABI.md §5). The first message
 *  of a call wins. */
export function fail(message: string): void {
  if (errorMessage === null) errorMessage = String.UTF8.encode(message);
}

/** Whether `fail` was called during this call. */
@inline
export function failed(): bool {
  return errorMessage !== null;
}

/** Starts a call: frees the garbage of the previous one (no managed object is on the stack yet,
 *  which is what the `minimal` runtime's collector needs) and forgets its error. */
function begin(): void {
  errorMessage = null;
  __collect();
}

/** Ends a call: status 0, or 1 with the error message in the frame. */
function finish(frame: usize): i32 {
  const message = errorMessage;
  if (message === null) return 0;
  // The message stays reachable through `errorMessage` until the next call starts.
  setField(frame, ERROR_PTR, changetype<usize>(message));
  setField(frame, ERROR_LEN, <usize>message.byteLength);
  return 1;
}

// ---------------------------------------------------------------------------------------------
// Emitting records

/** Collects a UDF's output records (map, flat_map, group_reduce). */
@final
export class Emitter {
  keys: BinaryOut = new BinaryOut();
  values: BinaryOut = new BinaryOut();
  /** Records emitted in this call. */
  count: u32 = 0;

  /** Emits the record (`key`, `value`). Each is Bytes, string (written as UTF-8), Uint8Array,
   *  StaticArray<u8> or ArrayBuffer; the bytes are copied. */
  @inline
  emit<K, V>(key: K, value: V): void {
    this.keys.data.write<K>(key);
    this.keys.end();
    this.values.data.write<V>(value);
    this.values.end();
    this.count++;
  }

  /** Emits (`bytes[start .. end]`, `value`) without making a view of the key: the way to emit
   *  part of an input (a word of a line) with no allocation per record. */
  @inline
  emitSlice<V>(bytes: Bytes, start: i32, end: i32, value: V): void {
    this.keys.data.writeRaw(bytes.ptr + <usize>start, <usize>(end - start));
    this.keys.end();
    this.values.data.write<V>(value);
    this.values.end();
    this.count++;
  }

  /** Emits (`key`, `value` in decimal). */
  @inline
  emitDecimal<K>(key: K, value: u64): void {
    this.keys.data.write<K>(key);
    this.keys.end();
    this.values.data.writeDecimal(value);
    this.values.end();
    this.count++;
  }

  /** The buffers to write a record's key and value into piece by piece: write the key's bytes to
   *  `keyData()`, the value's to `valueData()`, then call `endRecord()`. */
  @inline keyData(): Buffer { return this.keys.data; }
  @inline valueData(): Buffer { return this.values.data; }
  @inline
  endRecord(): void {
    this.keys.end();
    this.values.end();
    this.count++;
  }

  start(): void {
    this.keys.shrink();
    this.values.shrink();
    this.keys.start();
    this.values.start();
    this.count = 0;
  }

  /** Describes the records in the frame's output fields. */
  publish(frame: usize): void {
    setField(frame, OUT_COUNT, <usize>this.count);
    setField(frame, OUT_KEYS_OFFSETS, this.keys.offsets.ptr);
    setField(frame, OUT_KEYS_DATA, this.keys.data.ptr);
    setField(frame, OUT_VALUES_OFFSETS, this.values.offsets.ptr);
    setField(frame, OUT_VALUES_DATA, this.values.data.ptr);
  }
}

/** The one emitter of the module: output of one call, read by the host before the next. */
const emitter = new Emitter();
/** The views the drivers pass to callbacks, reused from record to record. */
const keyView = new Bytes();
const valueView = new Bytes();

// ---------------------------------------------------------------------------------------------
// Drivers: one per kind of UDF

/** Runs a `map` UDF: `fn` emits exactly one record per input record (the SDK checks). */
@inline
export function map(frame: usize, fn: (key: Bytes, value: Bytes, out: Emitter) => void): i32 {
  begin();
  const n = <u32>field(frame, IN_COUNT);
  const ko = field(frame, IN_KEYS_OFFSETS), kd = field(frame, IN_KEYS_DATA);
  const vo = field(frame, IN_VALUES_OFFSETS), vd = field(frame, IN_VALUES_DATA);
  const out = emitter;
  out.start();
  for (let i: u32 = 0; i < n; i++) {
    fn(item(keyView, ko, kd, i), item(valueView, vo, vd, i), out);
    if (out.count != i + 1 && !failed()) {
      fail("a map UDF emits exactly one record per input record; record " + i.toString() +
        " gave " + (out.count - i).toString());
    }
    if (failed()) return finish(frame);
  }
  out.publish(frame);
  return 0;
}

/** Runs a `flat_map` UDF: `fn` emits any number of records per input record. */
@inline
export function flatMap(frame: usize, fn: (key: Bytes, value: Bytes, out: Emitter) => void): i32 {
  begin();
  const n = <u32>field(frame, IN_COUNT);
  const ko = field(frame, IN_KEYS_OFFSETS), kd = field(frame, IN_KEYS_DATA);
  const vo = field(frame, IN_VALUES_OFFSETS), vd = field(frame, IN_VALUES_DATA);
  const out = emitter;
  out.start();
  for (let i: u32 = 0; i < n; i++) {
    fn(item(keyView, ko, kd, i), item(valueView, vo, vd, i), out);
    if (failed()) return finish(frame);
  }
  out.publish(frame);
  return 0;
}

/** The keep bytes of a filter call. */
const keep = new Buffer();

/** Runs a `filter` UDF: `fn` returns true to keep the record. */
@inline
export function filter(frame: usize, fn: (key: Bytes, value: Bytes) => bool): i32 {
  begin();
  const n = <u32>field(frame, IN_COUNT);
  const ko = field(frame, IN_KEYS_OFFSETS), kd = field(frame, IN_KEYS_DATA);
  const vo = field(frame, IN_VALUES_OFFSETS), vd = field(frame, IN_VALUES_DATA);
  keep.shrink(KEEP_BYTES);
  const flags = keep.reserve(<usize>n);
  for (let i: u32 = 0; i < n; i++) {
    store<u8>(flags + <usize>i, <u8>fn(item(keyView, ko, kd, i), item(valueView, vo, vd, i)));
    if (failed()) return finish(frame);
  }
  setField(frame, OUT_KEEP, flags);
  return 0;
}

/** The values of one group of a `group_reduce` call, read in place; valid while the function
 *  runs (the driver points it at the next group after). */
@final
export class Values {
  constructor(
    private offsets: usize,
    private data: usize,
    /** The group's first value in the call's values array. */
    public first: u32,
    /** The number of values. */
    public length: i32,
  ) {}

  /** Value `i` (0 <= i < length) as a new view: keep it as long as the call lasts. */
  get(i: i32): Bytes {
    return item(new Bytes(), this.offsets, this.data, this.first + <u32>i);
  }

  /** Value `i` in `view` (no allocation): valid until the view is pointed elsewhere. */
  @inline
  view(i: i32, view: Bytes): Bytes {
    return item(view, this.offsets, this.data, this.first + <u32>i);
  }

  /** Every value as its own view. */
  toArray(): Bytes[] {
    const all = new Array<Bytes>(this.length);
    for (let i = 0; i < this.length; i++) unchecked(all[i] = this.get(i));
    return all;
  }
}

/** Runs a `group_reduce` UDF: `fn` gets each key with all its values and emits any records. */
@inline
export function groupReduce(frame: usize, fn: (key: Bytes, values: Values, out: Emitter) => void): i32 {
  begin();
  const n = <u32>field(frame, IN_COUNT);
  const ko = field(frame, IN_KEYS_OFFSETS), kd = field(frame, IN_KEYS_DATA);
  const vo = field(frame, IN_VALUES_OFFSETS), vd = field(frame, IN_VALUES_DATA);
  const groups = field(frame, IN_GROUPS);
  const out = emitter;
  out.start();
  // One Values for the whole call, pointed at each group in turn.
  const values = new Values(vo, vd, 0, 0);
  for (let g: u32 = 0; g < n; g++) {
    const first = load<u32>(groups + (<usize>g << 2));
    const end = load<u32>(groups + (<usize>g << 2), 4);
    values.first = first;
    values.length = <i32>(end - first);
    fn(item(keyView, ko, kd, g), values, out);
    if (failed()) return finish(frame);
  }
  out.publish(frame);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Reduce and its combiner

/** How a reduce's values are read from and written to bytes. */
export class Codec<T> {
  constructor(
    /** Decodes a value; on bad input it calls `fail` (naming the value) and returns anything. */
    public decode: (bytes: Bytes) => T,
    /** Appends the encoding of a value. */
    public encode: (value: T, out: Buffer) => void,
  ) {}
}

function decodeDecimal(bytes: Bytes): u64 {
  const value = parseDecimal(bytes.ptr, bytes.length);
  if (decimalError != DecimalError.None) failDecimal("the value " + bytes.quoted());
  return value;
}

function encodeDecimal(value: u64, out: Buffer): void {
  out.writeDecimal(value);
}

/** Unsigned decimal integers fitting a u64 (`"007"` is read as 7 and written as `"7"`). */
export const DECIMAL: Codec<u64> = new Codec<u64>(decodeDecimal, encodeDecimal);

/** The values a reduce or combiner call returns. */
const reduced = new BinaryOut();

/** A `reduce` UDF (ABI.md §3): a codec and an associative, commutative fold of two values; and
 *  its combiner (§3a), which holds one running value per key in guest memory between calls.
 *
 *     const sum = new Reducer<u64>(DECIMAL, add);
 *     export function weft_reduce_sum(frame: usize): i32 { return sum.reduce(frame); }
 *     export function weft_combine_sum(frame: usize, op: i32): i32 { return sum.combine(frame, op); }
 */
@final
export class Reducer<T> {
  private table: Table<T> | null = null;

  constructor(
    public codec: Codec<T>,
    /** Folds two values into one; may call `fail` (its result is then ignored). */
    public fold: (a: T, b: T) => T,
  ) {}

  /** The `weft_reduce_<name>` export's body: one value per group, the fold of its values. */
  reduce(frame: usize): i32 {
    begin();
    const n = <u32>field(frame, IN_COUNT);
    const vo = field(frame, IN_VALUES_OFFSETS), vd = field(frame, IN_VALUES_DATA);
    const groups = field(frame, IN_GROUPS);
    const decode = this.codec.decode, encode = this.codec.encode, fold = this.fold;
    const out = reduced;
    out.shrink();
    out.start();
    for (let g: u32 = 0; g < n; g++) {
      const first = load<u32>(groups + (<usize>g << 2));
      const end = load<u32>(groups + (<usize>g << 2), 4);
      let acc = decode(item(valueView, vo, vd, first));
      for (let v = first + 1; v < end; v++) {
        acc = fold(acc, decode(item(valueView, vo, vd, v)));
        if (failed()) return finish(frame);
      }
      if (failed()) return finish(frame);
      encode(acc, out.data);
      out.end();
    }
    setField(frame, OUT_COUNT, <usize>n);
    setField(frame, OUT_VALUES_OFFSETS, out.offsets.ptr);
    setField(frame, OUT_VALUES_DATA, out.data.ptr);
    return 0;
  }

  /** The `weft_combine_<name>` export's body: `op` 0 folds the frame's records into the values
   *  held by key, 1 drains them as output records (ABI.md §3a). */
  combine(frame: usize, op: i32): i32 {
    begin();
    let table = this.table;
    if (table === null) this.table = table = new Table<T>();
    if (op == 1) {
      table.drain(frame, this.codec.encode);
      return 0;
    }
    if (op != 0) {
      fail("unknown combiner operation " + op.toString());
      return finish(frame);
    }
    const n = <u32>field(frame, IN_COUNT);
    const ko = field(frame, IN_KEYS_OFFSETS), kd = field(frame, IN_KEYS_DATA);
    const vo = field(frame, IN_VALUES_OFFSETS), vd = field(frame, IN_VALUES_DATA);
    const decode = this.codec.decode, fold = this.fold;
    table.startFold();
    for (let i: u32 = 0; i < n; i++) {
      const kstart = load<u32>(ko + (<usize>i << 2));
      const kend = load<u32>(ko + (<usize>i << 2), 4);
      const value = decode(item(valueView, vo, vd, i));
      const slot = table.find(kd + <usize>kstart, kend - kstart);
      if (slot < 0) {
        table.insert(kd + <usize>kstart, kend - kstart, ~slot, value);
      } else {
        table.set(slot, fold(table.get(slot), value));
      }
      if (failed()) return finish(frame);
    }
    setField(frame, OUT_COUNT, table.bytesHeld());
    return 0;
  }
}

/** Running values by key: an open-addressing hash table (linear probing, at most half full) of
 *  entry numbers; the keys one after another in an arena, with Arrow offsets, so that a drain
 *  hands them to the host as they lie; the values decoded, in a managed array. */
@final
class Table<T> {
  /** Per slot: the key's hash (u32) and its entry number + 1 (u32; 0 = empty). */
  slots: usize = 0;
  mask: u32 = 0;
  entries: u32 = 0;
  keys: BinaryOut = new BinaryOut();
  values: Array<T> = new Array<T>();
  /** Set by a drain: the buffers it handed to the host are reset at the next fold. */
  drained: bool = false;

  constructor() {
    this.keys.start();
    this.allocSlots(1024);
  }

  private allocSlots(count: u32): void {
    const bytes = <usize>count << 3;
    this.slots = heap.alloc(bytes);
    memory.fill(this.slots, 0, bytes);
    this.mask = count - 1;
  }

  startFold(): void {
    if (this.drained) {
      this.drained = false;
      this.keys.shrink();
      this.keys.start();
    }
  }

  /** The slot holding the key at `ptr` (`len` bytes), or `~slot` of the empty slot where it goes. */
  find(ptr: usize, len: u32): i32 {
    const h = hash(ptr, len);
    const offsets = this.keys.offsets.ptr, data = this.keys.data.ptr;
    let i = h & this.mask;
    while (true) {
      const at = this.slots + (<usize>i << 3);
      const entry = load<u32>(at, 4);
      if (entry == 0) {
        store<u32>(at, h);
        return ~(<i32>i);
      }
      if (load<u32>(at) == h) {
        const e = entry - 1;
        const start = load<u32>(offsets + (<usize>e << 2));
        const end = load<u32>(offsets + (<usize>e << 2), 4);
        if (end - start == len && same(data + <usize>start, ptr, len)) return <i32>i;
      }
      i = (i + 1) & this.mask;
    }
  }

  @inline get(slot: i32): T {
    return unchecked(this.values[load<u32>(this.slots + (<usize>slot << 3), 4) - 1]);
  }

  @inline set(slot: i32, value: T): void {
    unchecked(this.values[load<u32>(this.slots + (<usize>slot << 3), 4) - 1] = value);
  }

  /** Adds the key to the empty `slot` that `find` named (its hash already stored there). */
  insert(ptr: usize, len: u32, slot: i32, value: T): void {
    this.keys.data.writeRaw(ptr, <usize>len);
    this.keys.end();
    this.values.push(value);
    this.entries++;
    store<u32>(this.slots + (<usize>slot << 3), this.entries, 4);
    if (this.entries > (this.mask >> 1)) this.growSlots();
  }

  private growSlots(): void {
    const old = this.slots, oldCount = this.mask + 1;
    this.allocSlots(oldCount << 1);
    for (let i: u32 = 0; i < oldCount; i++) {
      const at = old + (<usize>i << 3);
      const entry = load<u32>(at, 4);
      if (entry == 0) continue;
      const h = load<u32>(at);
      let j = h & this.mask;
      while (load<u32>(this.slots + (<usize>j << 3), 4) != 0) j = (j + 1) & this.mask;
      store<u32>(this.slots + (<usize>j << 3), h);
      store<u32>(this.slots + (<usize>j << 3), entry, 4);
    }
    heap.free(old);
  }

  /** The bytes held: the tables as allocated. */
  bytesHeld(): usize {
    return ((<usize>this.mask + 1) << 3) + this.keys.offsets.capacity + this.keys.data.capacity
      + <usize>this.values.length * <usize>sizeof<T>();
  }

  /** Describes every key and value held as output records, and forgets them. */
  drain(frame: usize, encode: (value: T, out: Buffer) => void): void {
    const n = this.entries;
    const out = reduced;
    out.shrink();
    out.start();
    for (let e: u32 = 0; e < n; e++) {
      encode(unchecked(this.values[e]), out.data);
      out.end();
    }
    setField(frame, OUT_COUNT, <usize>n);
    setField(frame, OUT_KEYS_OFFSETS, this.keys.offsets.ptr);
    setField(frame, OUT_KEYS_DATA, this.keys.data.ptr);
    setField(frame, OUT_VALUES_OFFSETS, out.offsets.ptr);
    setField(frame, OUT_VALUES_DATA, out.data.ptr);
    // Hold nothing: the key arena is the output the host reads, so it is reset at the next fold;
    // the table and the values can go now. A table grown large is given back.
    this.entries = 0;
    this.values.length = 0;
    const count = this.mask + 1;
    if (count > 65536) {
      heap.free(this.slots);
      this.allocSlots(1024);
    } else {
      memory.fill(this.slots, 0, <usize>count << 3);
    }
    this.drained = true;
  }
}

/** Whether `len` bytes at `a` and at `b` are equal. */
@inline
function same(a: usize, b: usize, len: u32): bool {
  let i: u32 = 0;
  for (; i + 8 <= len; i += 8) {
    if (load<u64>(a + <usize>i) != load<u64>(b + <usize>i)) return false;
  }
  for (; i < len; i++) {
    if (load<u8>(a + <usize>i) != load<u8>(b + <usize>i)) return false;
  }
  return true;
}

/** A fast hash of `len` bytes at `ptr` (a multiply-and-rotate over 8-byte words; its reads never
 *  pass the key's end). */
@inline
function hash(ptr: usize, len: u32): u32 {
  const K: u64 = 0x9E3779B97F4A7C15;
  let h: u64 = <u64>len * K;
  let i: u32 = 0;
  for (; i + 8 <= len; i += 8) {
    h = rotl<u64>(h ^ load<u64>(ptr + <usize>i), 23) * K;
  }
  const rest = len - i;
  if (rest >= 4) {
    const tail = <u64>load<u32>(ptr + <usize>i) | (<u64>load<u32>(ptr + <usize>(len - 4)) << 32);
    h = rotl<u64>(h ^ tail, 23) * K;
  } else if (rest > 0) {
    const tail = <u64>load<u8>(ptr + <usize>i)
      | (<u64>load<u8>(ptr + <usize>(i + (rest >> 1))) << 8)
      | (<u64>load<u8>(ptr + <usize>(len - 1)) << 16);
    h = rotl<u64>(h ^ tail, 23) * K;
  }
  h ^= h >> 29;
  h *= K;
  return <u32>(h >> 32);
}

// ---------------------------------------------------------------------------------------------
// CSV rows (ABI.md, "Values of CSV input")

/** A CSV record as a value of `format = "csv"` input: its fields, and their names when the input
 *  has a header. Read in place; `row(value)` reuses one Row for the whole module. */
@final
export class Row {
  /** The number of fields. */
  length: i32 = 0;
  /** Whether the fields have names (the input has a header). */
  named: bool = false;
  private lengths: usize = 0;
  private data: usize = 0;
  private namesAt: usize = 0;
  /** The views `field` and `require` return, reused from row to row (none is allocated per
   *  record): each is valid until the next `read`. */
  private views: Bytes[] = [];
  private used: i32 = 0;

  private view(ptr: usize, length: i32): Bytes {
    if (this.used == this.views.length) this.views.push(new Bytes());
    return unchecked(this.views[this.used++]).setTo(ptr, length);
  }

  /** Reads `value` as a row: false (the row left empty) when it is not one. */
  read(value: Bytes): bool {
    this.length = 0;
    this.named = false;
    this.used = 0;
    const size = <usize>value.length;
    if (size < 8) return false;
    const p = value.ptr;
    const n = <usize>load<u32>(p), named = load<u32>(p, 4);
    if (named > 1) return false;
    const count = named ? n << 1 : n;
    if (count > (size - 8) >> 2) return false;
    const header: usize = 8 + (count << 2);
    let total: usize = 0, fields: usize = 0;
    for (let i: usize = 0; i < count; i++) {
      total += <usize>load<u32>(p + 8 + (i << 2));
      if (total > size) return false;
      if (i + 1 == n) fields = total;
    }
    if (header + total != size) return false;
    this.length = <i32>n;
    this.named = named == 1;
    this.lengths = p + 8;
    this.data = p + header;
    this.namesAt = fields;
    return true;
  }

  /** Field `i` (from 0) as a new view, or null past the last. */
  get(i: i32): Bytes | null {
    if (i < 0 || i >= this.length) return null;
    let at: usize = 0;
    for (let j = 0; j < i; j++) at += <usize>load<u32>(this.lengths + (<usize>j << 2));
    return new Bytes(this.data + at, <i32>load<u32>(this.lengths + (<usize>i << 2)));
  }

  /** The name of field `i`, or null without a header or past the last. */
  name(i: i32): Bytes | null {
    if (!this.named || i < 0 || i >= this.length) return null;
    let at = this.namesAt;
    const names = this.lengths + (<usize>this.length << 2);
    for (let j = 0; j < i; j++) at += <usize>load<u32>(names + (<usize>j << 2));
    return new Bytes(this.data + at, <i32>load<u32>(names + (<usize>i << 2)));
  }

  /** The field called `name` in the header, or null without a header or such a column. The view
   *  is valid until the next row is read. */
  field(name: string): Bytes | null {
    if (!this.named) return null;
    const names = this.lengths + (<usize>this.length << 2);
    let fieldAt: usize = 0, nameAt = this.namesAt;
    const view = nameView;
    for (let i = 0; i < this.length; i++) {
      const flen = load<u32>(this.lengths + (<usize>i << 2));
      const nlen = load<u32>(names + (<usize>i << 2));
      if (view.setTo(this.data + nameAt, <i32>nlen).equals(name)) {
        return this.view(this.data + fieldAt, <i32>flen);
      }
      fieldAt += <usize>flen;
      nameAt += <usize>nlen;
    }
    return null;
  }

  /** The field called `name`; when there is none it calls `fail` with a message naming the
   *  column (and the row's columns) and returns an empty view. */
  require(name: string): Bytes {
    const found = this.field(name);
    if (found !== null) return found;
    if (!this.named) {
      fail("the row has no field \"" + name + "\": the input has no header (set `header = true`, " +
        "or read fields by index)");
    } else {
      let names = "";
      for (let i = 0; i < this.length; i++) {
        if (i > 0) names += ", ";
        names += this.name(i)!.toString();
      }
      fail("the row has no field \"" + name + "\" (its fields: " + names + ")");
    }
    return this.view(0, 0);
  }

  /** The field called `name` as a decimal u64; on a missing column or a bad number it calls
   *  `fail` naming the column and returns 0. */
  decimal(name: string): u64 {
    const bytes = this.require(name);
    if (failed()) return 0;
    const value = parseDecimal(bytes.ptr, bytes.length);
    if (decimalError != DecimalError.None) failDecimal("the row field \"" + name + "\"");
    return value;
  }
}

const sharedRow = new Row();
/** The view `Row.field` compares names through. */
const nameView = new Bytes();

/** `value` read as a CSV row (the one Row of the module, valid until the next call of `row`); when
 *  it is not a row, `fail` is called and the row is empty. */
export function row(value: Bytes): Row {
  if (!sharedRow.read(value)) fail("the value is not a CSV row (is the input's format \"csv\"?)");
  return sharedRow;
}
