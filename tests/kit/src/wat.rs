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
/// A map that returns its input unchanged by pointing the output at the input buffers.
pub const IDENTITY_MAP: &str = r#"
  (func (export "weft_map_identity") (param $f i32) (result i32)
    (i32.store offset=24 (local.get $f) (i32.load offset=0 (local.get $f)))
    (i32.store offset=28 (local.get $f) (i32.load offset=4 (local.get $f)))
    (i32.store offset=32 (local.get $f) (i32.load offset=8 (local.get $f)))
    (i32.store offset=36 (local.get $f) (i32.load offset=12 (local.get $f)))
    (i32.store offset=40 (local.get $f) (i32.load offset=16 (local.get $f)))
    (i32.const 0))"#;

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
