// AssemblyScript's `abort` for Weft guests. asc's default is an import `env.abort`, which the host
// refuses (ABI.md §1); the build's `--use abort=~lib/weft-guest/abort/abort` routes every `abort`
// (a `throw`, a failed `assert`, running out of memory) here instead: the message goes to stderr
// through WASI, then the module traps. The host fails the task and shows the tail of stderr with
// the trap (§5).

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: u32, iovs: usize, iovs_len: u32, written: usize): u16;

/** Room for the message: written without allocating, as the abort may be for lack of memory. */
const MESSAGE_SIZE: usize = 2048;
const message = memory.data(<i32>MESSAGE_SIZE + 16);

/** Appends `text` as UTF-8 (lone surrogates as '?') at `at`, within the buffer. */
function put(at: usize, text: string | null): usize {
  if (text === null) return put(at, "(no message)");
  const chars = changetype<usize>(text);
  const end = message + MESSAGE_SIZE;
  for (let i = 0, n = text.length; i < n && at + 4 <= end; i++) {
    let c = <u32>load<u16>(chars + (<usize>i << 1));
    if (c >= 0xD800 && c < 0xDC00 && i + 1 < n) {
      const d = <u32>load<u16>(chars + (<usize>(i + 1) << 1));
      if (d >= 0xDC00 && d < 0xE000) {
        c = 0x10000 + ((c - 0xD800) << 10) + (d - 0xDC00);
        i++;
      }
    }
    if (c >= 0xD800 && c < 0xE000) c = 0x3F;
    if (c < 0x80) {
      store<u8>(at++, <u8>c);
    } else if (c < 0x800) {
      store<u8>(at++, <u8>(0xC0 | (c >> 6)));
      store<u8>(at++, <u8>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      store<u8>(at++, <u8>(0xE0 | (c >> 12)));
      store<u8>(at++, <u8>(0x80 | ((c >> 6) & 0x3F)));
      store<u8>(at++, <u8>(0x80 | (c & 0x3F)));
    } else {
      store<u8>(at++, <u8>(0xF0 | (c >> 18)));
      store<u8>(at++, <u8>(0x80 | ((c >> 12) & 0x3F)));
      store<u8>(at++, <u8>(0x80 | ((c >> 6) & 0x3F)));
      store<u8>(at++, <u8>(0x80 | (c & 0x3F)));
    }
  }
  return at;
}

function putNumber(at: usize, n: u32): usize {
  let digits = 1;
  for (let v = n; v >= 10; v /= 10) digits++;
  if (at + <usize>digits > message + MESSAGE_SIZE) return at;
  for (let i = digits - 1; i >= 0; i--) {
    store<u8>(at + <usize>i, <u8>(0x30 + n % 10));
    n /= 10;
  }
  return at + <usize>digits;
}

/** AssemblyScript's `abort`: writes `abort: MESSAGE at FILE:LINE:COLUMN` to stderr, then traps.
 *  The host fails the task and shows the tail of stderr with the trap (ABI.md §5). */
export function abort(text: string | null, file: string | null, line: u32, column: u32): void {
  let at = put(message, "abort: ");
  at = put(at, text);
  if (file !== null) {
    at = put(at, " at ");
    at = put(at, file);
    at = put(at, ":");
    at = putNumber(at, line);
    at = put(at, ":");
    at = putNumber(at, column);
  }
  store<u8>(at++, 0x0A);
  const iov = message + MESSAGE_SIZE + 8;
  store<u32>(iov, <u32>message);
  store<u32>(iov, <u32>(at - message), 4);
  fd_write(2, iov, 1, iov - 8);
  unreachable();
}
