// The exports every Weft guest has (ABI.md §2).
//
// The build passes this file to asc as a second entry file, beside the user's, so that its exports
// are the module's without the user writing them. It holds no state: being an entry, it is a module
// of its own, not the `weft-guest` the user imports.

// Loads the abort handler, which `--use abort=~lib/weft-guest/abort/abort` names.
import "weft-guest/abort";

/** The ABI version this SDK implements. */
export function weft_abi_version(): i32 {
  return 1;
}

/** A block for the host's buffers (the call frame, the input batch) from the same TLSF heap as
 *  the module's own memory, so they never collide. TLSF aligns every block to 16 bytes. */
export function weft_alloc(size: usize, align: usize): usize {
  return heap.alloc(size);
}

export function weft_free(ptr: usize, size: usize, align: usize): void {
  if (ptr != 0) heap.free(ptr);
}

