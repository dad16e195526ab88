//! The module-wide exports every guest needs (ABI.md §2): `weft_abi_version`, `weft_alloc` and
//! `weft_free` (wasm32 only), plus `_initialize` on WASI.
//!
//! They live here, in the SDK, so a user crate gets them just by depending on `weft-guest`: rustc
//! exports a dependency's `#[no_mangle]` functions from the final `cdylib`. The names are literals
//! (attributes need them) and are checked against `weft-abi` at compile time below.

use std::alloc::{self, Layout};
#[cfg(target_os = "wasi")]
use std::sync::atomic::{AtomicBool, Ordering};

const _: () = {
    assert!(const_str_eq(
        weft_abi::ABI_VERSION_EXPORT,
        "weft_abi_version"
    ));
    assert!(const_str_eq(weft_abi::ALLOC_EXPORT, "weft_alloc"));
    assert!(const_str_eq(weft_abi::FREE_EXPORT, "weft_free"));
    assert!(const_str_eq(weft_abi::INITIALIZE_EXPORT, "_initialize"));
};

/// The ABI version this guest was built for.
#[unsafe(no_mangle)]
extern "C" fn weft_abi_version() -> u32 {
    weft_abi::ABI_VERSION
}

/// A block of `size` bytes aligned to `align` from Rust's global allocator, or null (0) when out of
/// memory or when `align` is not a power of two. A zero-size request gets a non-null, aligned
/// pointer that owns nothing (the ABI asks for a non-zero pointer).
#[unsafe(no_mangle)]
extern "C" fn weft_alloc(size: usize, align: usize) -> *mut u8 {
    let Ok(layout) = Layout::from_size_align(size, align) else {
        return std::ptr::null_mut();
    };
    if size == 0 {
        return std::ptr::without_provenance_mut(layout.align());
    }
    // SAFETY: the layout has a non-zero size.
    unsafe { alloc::alloc(layout) }
}

/// Releases a block from [`weft_alloc`], given the same size and alignment.
///
/// # Safety
/// The host must pass a pointer `weft_alloc(size, align)` returned and not yet freed (ABI.md §2).
/// Null pointers, zero sizes and invalid layouts are ignored: `weft_alloc` never allocated those.
#[unsafe(no_mangle)]
unsafe extern "C" fn weft_free(pointer: *mut u8, size: usize, align: usize) {
    let Ok(layout) = Layout::from_size_align(size, align) else {
        return;
    };
    if pointer.is_null() || size == 0 {
        return;
    }
    // SAFETY: per the ABI, `pointer` came from `weft_alloc` with this very layout.
    unsafe { alloc::dealloc(pointer, layout) }
}

/// The WASI reactor constructor (ABI.md §1): runs the module's static constructors once, before
/// any other call.
///
/// Rust builds a `cdylib` for `wasm32-wasip1` without the C runtime's reactor start file, and when
/// nothing calls `__wasm_call_ctors` the linker assumes a *command* and wraps every export in a
/// call to the constructors and, after it, the destructors: on every batch and every `weft_alloc`.
/// Calling it from here makes the linker see a reactor, so exports are exported as they are and the
/// host calls this once after instantiation. Like the C runtime's `crt1-reactor.o`, it traps if
/// called twice. (A crate that brings its own `_initialize` gets a duplicate-symbol link error.)
#[cfg(target_os = "wasi")]
#[unsafe(no_mangle)]
extern "C" fn _initialize() {
    unsafe extern "C" {
        /// Synthesized by the linker: runs the static constructors of the module.
        fn __wasm_call_ctors();
    }
    static INITIALIZED: AtomicBool = AtomicBool::new(false);
    if INITIALIZED.swap(true, Ordering::Relaxed) {
        core::arch::wasm32::unreachable();
    }
    // SAFETY: called once, before any other code of the module runs (the ABI's contract).
    unsafe { __wasm_call_ctors() }
}

/// `a == b`, usable in constants.
const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
