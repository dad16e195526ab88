//! Hand-written WAT guests for the edge cases no well-behaved SDK would produce: a module from its
//! parts, the parts every guest needs, and a bump allocator.

/// The exported memory of a fixture.
pub const MEMORY: &str = r#"(memory (export "memory") 2)"#;
/// `weft_abi_version` returning 1.
pub const ABI_V1: &str = r#"(func (export "weft_abi_version") (result i32) i32.const 1)"#;
/// A bump allocator that grows memory as needed and returns 0 when it cannot.
pub const ALLOC: &str = r#"
  (global $bump (mut i32) (i32.const 1024))
  (func $alloc (export "weft_alloc") (param $size i32) (param $align i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr
      (i32.and
        (i32.add (global.get $bump) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq
              (memory.grow
                (i32.sub (i32.add (i32.shr_u (local.get $end) (i32.const 16)) (i32.const 1))
                         (memory.size)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $bump (local.get $end))
    (local.get $ptr))"#;
/// `weft_free` that does nothing (valid for a bump allocator).
pub const FREE: &str = r#"(func (export "weft_free") (param i32 i32 i32))"#;
/// The body of a map that returns its input unchanged: the output fields of the frame (`$f`)
/// point at the input buffers. A macro, so that fixtures can `concat!` it.
macro_rules! pass_through {
    () => {
        "
    (i32.store offset=24 (local.get $f) (i32.load offset=0 (local.get $f)))
    (i32.store offset=28 (local.get $f) (i32.load offset=4 (local.get $f)))
    (i32.store offset=32 (local.get $f) (i32.load offset=8 (local.get $f)))
    (i32.store offset=36 (local.get $f) (i32.load offset=12 (local.get $f)))
    (i32.store offset=40 (local.get $f) (i32.load offset=16 (local.get $f)))
    (i32.const 0)"
    };
}

/// [`pass_through!`] for fixtures written elsewhere: ends a map body with "return the input".
pub const PASS_THROUGH: &str = pass_through!();

/// A map that returns its input unchanged by pointing the output at the input buffers.
pub const IDENTITY_MAP: &str = concat!(
    r#"(func (export "weft_map_identity") (param $f i32) (result i32)"#,
    pass_through!(),
    ")"
);

/// A map that fails every call with a 10 MiB message of `x`s (it grows memory to hold it): what
/// a hostile or broken guest can send back.
pub const HUGE_ERROR_MAP: &str = r#"
  (func (export "weft_map_shout") (param $f i32) (result i32)
    (drop (memory.grow (i32.const 161)))
    (memory.fill (i32.const 65536) (i32.const 120) (i32.const 10485760))
    (i32.store offset=48 (local.get $f) (i32.const 65536))
    (i32.store offset=52 (local.get $f) (i32.const 10485760))
    (i32.const 1))"#;

/// The length of [`HUGE_ERROR_MAP`]'s message.
pub const HUGE_ERROR_BYTES: usize = 10 << 20;

/// Assembles a module from parts.
pub fn module(parts: &[&str]) -> Vec<u8> {
    let text = format!("(module\n{}\n)", parts.join("\n"));
    wat::parse_str(&text).unwrap_or_else(|e| panic!("fixture does not assemble: {e}\n{text}"))
}

/// A well-formed guest with the given extra items (imports must come first in the text format).
pub fn guest(imports: &str, items: &str) -> Vec<u8> {
    module(&[imports, MEMORY, ABI_V1, ALLOC, FREE, items])
}

/// The WASI imports the hostile fixtures below use, for [`guest`]'s `imports`.
pub const WASI_IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))"#;

/// A map that loops forever in guest code.
pub const SPIN_MAP: &str = r#"
  (func (export "weft_map_spin") (param i32) (result i32) (loop br 0) i32.const 0)"#;

/// `weft_map_NAME`: sleeps `nanos` in WASI `poll_oneoff` (one relative clock subscription on the
/// monotonic clock), then returns its input; needs the `poll_oneoff` of [`WASI_IMPORTS`].
pub fn napping_map(name: &str, nanos: u64) -> String {
    format!(
        r#"(func (export "weft_map_{name}") (param $f i32) (result i32)
    (i64.store (i32.const 256) (i64.const 7))              ;; userdata
    (i32.store8 (i32.const 264) (i32.const 0))             ;; tag: clock
    (i32.store (i32.const 272) (i32.const 1))              ;; id: monotonic
    (i64.store (i32.const 280) (i64.const {nanos}))        ;; timeout
    (i64.store (i32.const 288) (i64.const 0))              ;; precision
    (i32.store16 (i32.const 296) (i32.const 0))            ;; flags: relative
    (drop (call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 600)))
    {PASS_THROUGH})"#
    )
}

/// `weft_map_sleep`, asleep an hour in `poll_oneoff` ([`napping_map`]).
pub fn sleep_map() -> String {
    napping_map("sleep", 3_600_000_000_000)
}

/// A map that naps 30 ms in `poll_oneoff`, traps unless the sleep reports its one clock event,
/// then returns its input; needs [`WASI_IMPORTS`].
pub const NAP_MAP: &str = concat!(
    r#"
  (func (export "weft_map_nap") (param $f i32) (result i32)
    (i64.store (i32.const 256) (i64.const 7))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const 30000000))
    (i64.store (i32.const 288) (i64.const 0))
    (i32.store16 (i32.const 296) (i32.const 0))
    (if (i32.ne (call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 600))
                (i32.const 0))
      (then unreachable))
    (if (i32.ne (i32.load (i32.const 600)) (i32.const 1)) (then unreachable))
    (if (i64.ne (i64.load (i32.const 512)) (i64.const 7)) (then unreachable))
"#,
    pass_through!(),
    ")"
);

/// How many bytes [`CHATTY_MAP`] writes to stdout per call.
pub const CHATTY_BYTES: usize = 2 << 20;

/// A map that writes [`CHATTY_BYTES`] of `a` to stdout per call (64 KiB at a time, the way a guest
/// logging a lot does), trapping if any write fails, then returns its input; needs
/// [`WASI_IMPORTS`].
pub const CHATTY_MAP: &str = concat!(
    r#"
  (func (export "weft_map_chatty") (param $f i32) (result i32)
    (local $i i32)
    (memory.fill (i32.const 4096) (i32.const 97) (i32.const 65536))
    (i32.store (i32.const 256) (i32.const 4096))   ;; iovec: buf
    (i32.store (i32.const 260) (i32.const 65536))  ;; iovec: len
    (loop $write
      (if (i32.ne (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 264))
                  (i32.const 0))
        (then unreachable))
      (local.set $i (i32.add (local.get $i) (i32.load (i32.const 264))))
      (br_if $write (i32.lt_u (local.get $i) (i32.const 2097152))))
"#,
    pass_through!(),
    ")"
);

/// A map that calls the unimplemented WASI `sock_accept` 100,000 times per call, trapping unless
/// each says "not a socket" (errno 57), then returns its input; needs [`WASI_IMPORTS`].
pub const SOCKET_FLOOD_MAP: &str = concat!(
    r#"
  (func (export "weft_map_sockets") (param $f i32) (result i32)
    (local $i i32)
    (loop $again
      (if (i32.ne (call $sock_accept (i32.const 0) (i32.const 0) (i32.const 256)) (i32.const 57))
        (then unreachable))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100000))))
"#,
    pass_through!(),
    ")"
);

/// A flat_map that returns one record of [`BLOAT_BYTES`] whatever its input (growing its memory
/// to hold it): an output far larger than any batch should be.
pub const BLOAT_FLAT_MAP: &str = r#"
  (func (export "weft_flat_map_bloat") (param $f i32) (result i32)
    (local $base i32)
    (local.set $base (i32.mul (memory.grow (i32.const 1025)) (i32.const 65536)))
    (if (i32.lt_s (local.get $base) (i32.const 0)) (then unreachable))
    ;; offsets: keys [0, 0] at base, values [0, BLOAT] at base+8; data after them
    (i32.store (local.get $base) (i32.const 0))
    (i32.store offset=4 (local.get $base) (i32.const 0))
    (i32.store offset=8 (local.get $base) (i32.const 0))
    (i32.store offset=12 (local.get $base) (i32.const 67108864))
    (i32.store offset=24 (local.get $f) (i32.const 1))
    (i32.store offset=28 (local.get $f) (local.get $base))
    (i32.store offset=32 (local.get $f) (i32.add (local.get $base) (i32.const 16)))
    (i32.store offset=36 (local.get $f) (i32.add (local.get $base) (i32.const 8)))
    (i32.store offset=40 (local.get $f) (i32.add (local.get $base) (i32.const 16)))
    (i32.const 0))"#;

/// The size of [`BLOAT_FLAT_MAP`]'s record: 64 MiB.
pub const BLOAT_BYTES: usize = 64 << 20;

/// `weft_map_deep`: recurses `depth` calls deep (each frame at least 16 bytes of native stack),
/// then returns its input. 10,000 deep overflows 64 KiB of wasm stack and fits in 2 MiB.
pub fn deep_map(depth: u32) -> String {
    format!(
        r#"(func $down (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $down (i32.sub (local.get $n) (i32.const 1)))))))
  (func (export "weft_map_deep") (param $f i32) (result i32)
    (drop (call $down (i32.const {depth})))
    {PASS_THROUGH})"#
    )
}
