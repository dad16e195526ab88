//! The entry points of the generated exports (wasm32 only): read the call frame, run a driver,
//! describe the output (or the error) in the frame, return the status.
//!
//! All output lives in one [`State`] for the whole module: the ABI lets the host read a call's
//! output only until its next call into the module, so every UDF can share the same buffers, which
//! are cleared (keeping their capacity) at the start of each call. In steady state a batch
//! therefore costs no allocation for the output at all.

use std::cell::RefCell;
use std::fmt::Write;
use std::ptr;

use weft_abi::{Frame, STATUS_ERROR, STATUS_OK};

use super::{
    BinaryArray, CallError, Combiner, Failure, Folder, Group, Groups, Records, run_filter,
    run_group_reduce, run_records, run_reduce,
};
use crate::codec::Encode;
use crate::emitter::Emitter;

/// The guest-owned buffers the host reads after a call.
struct State {
    /// Output records (`map`, `flat_map`, `group_reduce`) or, values only, `reduce` results.
    out: Emitter,
    /// `filter`'s keep bytes.
    keep: Vec<u8>,
    /// The message of a failed call.
    error: String,
    /// The combiner of each `reduce` UDF that has been folded into, by UDF name.
    combiners: Vec<(&'static str, Combiner)>,
}

impl State {
    /// The index of `udf`'s combiner in `combiners`, made on first use.
    fn combiner(&mut self, udf: &'static str) -> usize {
        match self.combiners.iter().position(|(name, _)| *name == udf) {
            Some(at) => at,
            None => {
                self.combiners.push((udf, Combiner::new()));
                self.combiners.len() - 1
            }
        }
    }
}

thread_local! {
    // wasm32-wasip1 has no threads, so this is a plain static; `thread_local!` just makes it safe.
    static STATE: RefCell<State> = RefCell::new(State {
        out: Emitter::new(),
        keep: Vec::new(),
        error: String::new(),
        combiners: Vec::new(),
    });
}

/// Which buffers of [`State`] hold a successful call's output.
enum Output {
    Records,
    Keep,
    Values,
    /// A combiner's fold: the bytes it holds now.
    Held(usize),
    /// A combiner's drain: its records, in the combiner of that index.
    Drained(usize),
}

/// Runs one call: `body` reads the input described by the frame and fills the state's buffers.
///
/// # Safety
/// `frame` must be the frame the host passed to the export (ABI.md §4): readable and writable,
/// its input pointers describing host buffers that stay untouched during the call.
unsafe fn call(
    frame: *mut Frame,
    udf: &str,
    body: impl FnOnce(&Frame, &mut State) -> Result<Output, CallError>,
) -> u32 {
    if frame.is_null() {
        // Nowhere to write an error message: trap, and the host reports its own ABI violation.
        core::arch::wasm32::unreachable();
    }
    // SAFETY: the caller guarantees the frame is readable; it need not be aligned for this read.
    let input = unsafe { ptr::read_unaligned(frame) };
    STATE.with_borrow_mut(|state| {
        state.error.clear();
        let mut frame_out = input;
        let status = match body(&input, state) {
            Ok(Output::Records) => {
                describe_records(&mut frame_out, &state.out);
                STATUS_OK
            }
            Ok(Output::Keep) => {
                frame_out.out_keep = addr(state.keep.as_ptr());
                STATUS_OK
            }
            Ok(Output::Values) => {
                let values = &state.out.values;
                frame_out.out_count = count(values.len());
                frame_out.out_values_offsets = addr(values.offsets.as_ptr());
                frame_out.out_values_data = addr(values.data.as_ptr());
                STATUS_OK
            }
            Ok(Output::Held(bytes)) => {
                frame_out.out_count = count(bytes);
                STATUS_OK
            }
            Ok(Output::Drained(at)) => {
                describe_records(&mut frame_out, state.combiners[at].1.drained());
                STATUS_OK
            }
            Err(error) => {
                // Writing to a String cannot fail.
                let _ = write!(state.error, "{}", error.display(udf));
                frame_out.error_ptr = addr(state.error.as_ptr());
                frame_out.error_len = count(state.error.len());
                STATUS_ERROR
            }
        };
        // SAFETY: the caller guarantees the frame is writable. Writing the input fields back
        // unchanged is harmless, and one write is simpler than seven.
        unsafe { ptr::write_unaligned(frame, frame_out) };
        status
    })
}

/// Points the frame's output fields at `out`'s records.
fn describe_records(frame: &mut Frame, out: &Emitter) {
    frame.out_count = count(out.len());
    frame.out_keys_offsets = addr(out.keys.offsets.as_ptr());
    frame.out_keys_data = addr(out.keys.data.as_ptr());
    frame.out_values_offsets = addr(out.values.offsets.as_ptr());
    frame.out_values_data = addr(out.values.data.as_ptr());
}

/// A guest address as the ABI's u32. Lossless: pointers are 32-bit on wasm32.
fn addr<T>(pointer: *const T) -> u32 {
    pointer.addr() as u32
}

/// A length as the ABI's u32. Lossless on wasm32 (`usize` is 32-bit).
fn count(len: usize) -> u32 {
    len as u32
}

// ---------------------------------------------------------------------------------------------
// Reading the input. The host owns these buffers; they are only read, and every pointer is checked
// against the memory's size and alignment first, so a broken host gets an error, not undefined
// behaviour.

/// `len` u32s at `pointer`.
///
/// # Safety
/// If the range is within memory, it must not be written during `'a`.
unsafe fn u32s<'a>(pointer: u32, len: usize) -> Result<&'a [u32], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if !pointer.is_multiple_of(4) {
        return Err(Failure::abi("an offsets array is not 4-aligned"));
    }
    let bytes = len
        .checked_mul(4)
        .ok_or(Failure::abi("an offsets array is too long"))?;
    check_in_memory(pointer, bytes)?;
    // SAFETY: non-null, aligned, inside the memory (checked above), not written (caller).
    Ok(unsafe { std::slice::from_raw_parts(pointer as usize as *const u32, len) })
}

/// `len` bytes at `pointer`.
///
/// # Safety
/// As [`u32s`].
unsafe fn bytes<'a>(pointer: u32, len: usize) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    check_in_memory(pointer, len)?;
    // SAFETY: non-null, inside the memory (checked above), not written (caller).
    Ok(unsafe { std::slice::from_raw_parts(pointer as usize as *const u8, len) })
}

/// Checks a range is non-null and inside the linear memory (which also bounds it by `isize::MAX`,
/// as slices need).
fn check_in_memory(pointer: u32, len: usize) -> Result<(), Failure> {
    const PAGE: usize = 65536;
    let memory = core::arch::wasm32::memory_size::<0>().saturating_mul(PAGE);
    let end = (pointer as usize).checked_add(len);
    match end {
        Some(end) if pointer != 0 && end <= memory && end <= isize::MAX as usize => Ok(()),
        _ => Err(Failure::abi(
            "an input buffer lies outside the guest's memory",
        )),
    }
}

/// A binary array of `count` items: `count + 1` offsets, and the data up to the last offset.
///
/// # Safety
/// As [`u32s`].
unsafe fn array<'a>(count: usize, offsets: u32, data: u32) -> Result<BinaryArray<'a>, Failure> {
    if count == 0 {
        // The host may pass null pointers for an empty array (ABI.md, "Binary arrays").
        return Ok(BinaryArray::EMPTY);
    }
    let len = count
        .checked_add(1)
        .ok_or(Failure::abi("an input count is too large"))?;
    // SAFETY: forwarded to the caller.
    let offsets = unsafe { u32s(offsets, len) }?;
    let data_len = offsets[count] as usize;
    // SAFETY: forwarded to the caller.
    let data = unsafe { bytes(data, data_len) }?;
    Ok(BinaryArray::new(offsets, data))
}

/// # Safety
/// The frame's input buffers must stay untouched during `'a`.
unsafe fn records<'a>(frame: &Frame) -> Result<Records<'a>, Failure> {
    let count = frame.in_count as usize;
    // SAFETY: forwarded to the caller.
    unsafe {
        Ok(Records::new(
            array(count, frame.in_keys_offsets, frame.in_keys_data)?,
            array(count, frame.in_values_offsets, frame.in_values_data)?,
        ))
    }
}

/// # Safety
/// As [`records`].
unsafe fn groups<'a>(frame: &Frame) -> Result<Groups<'a>, Failure> {
    let count = frame.in_count as usize;
    if count == 0 {
        return Ok(Groups::new(BinaryArray::EMPTY, &[], BinaryArray::EMPTY));
    }
    // SAFETY: forwarded to the caller.
    unsafe {
        let keys = array(count, frame.in_keys_offsets, frame.in_keys_data)?;
        let groups = u32s(frame.in_groups, count + 1)?;
        let values = array(
            groups[count] as usize,
            frame.in_values_offsets,
            frame.in_values_data,
        )?;
        Ok(Groups::new(keys, groups, values))
    }
}

// ---------------------------------------------------------------------------------------------
// One entry point per kind. Safety, for each: `frame` is the pointer the host passed to the export.

/// Entry point of a `map` export.
///
/// # Safety
/// `frame` is the frame pointer the host passed to the export.
pub unsafe fn map<'a, F>(frame: *mut Frame, udf: &str, f: F) -> u32
where
    F: FnMut(&'a [u8], &'a [u8], &mut Emitter) -> Result<(), Failure>,
{
    // SAFETY: forwarded to the caller.
    unsafe { records_call(frame, udf, f) }
}

/// Entry point of a `flat_map` export.
///
/// # Safety
/// `frame` is the frame pointer the host passed to the export.
pub unsafe fn flat_map<'a, F>(frame: *mut Frame, udf: &str, f: F) -> u32
where
    F: FnMut(&'a [u8], &'a [u8], &mut Emitter) -> Result<(), Failure>,
{
    // SAFETY: forwarded to the caller.
    unsafe { records_call(frame, udf, f) }
}

/// # Safety
/// `frame` is the frame pointer the host passed to the export.
unsafe fn records_call<'a, F>(frame: *mut Frame, udf: &str, f: F) -> u32
where
    F: FnMut(&'a [u8], &'a [u8], &mut Emitter) -> Result<(), Failure>,
{
    // SAFETY: forwarded to the caller, who owns the frame and its buffers for the call.
    unsafe {
        call(frame, udf, |input, state| {
            state.out.clear();
            let records = records(input)?;
            run_records(&records, &mut state.out, f)?;
            Ok(Output::Records)
        })
    }
}

/// Entry point of a `filter` export.
///
/// # Safety
/// `frame` is the frame pointer the host passed to the export.
pub unsafe fn filter<'a, F>(frame: *mut Frame, udf: &str, f: F) -> u32
where
    F: FnMut(&'a [u8], &'a [u8]) -> Result<bool, Failure>,
{
    // SAFETY: forwarded to the caller.
    unsafe {
        call(frame, udf, |input, state| {
            state.keep.clear();
            let records = records(input)?;
            run_filter(&records, &mut state.keep, f)?;
            Ok(Output::Keep)
        })
    }
}

/// Entry point of a `reduce` export.
///
/// # Safety
/// `frame` is the frame pointer the host passed to the export.
pub unsafe fn reduce<'a, V, F>(frame: *mut Frame, udf: &str, f: F) -> u32
where
    V: Encode,
    F: FnMut(Group<'a>) -> Result<V, Failure>,
{
    // SAFETY: forwarded to the caller.
    unsafe {
        call(frame, udf, |input, state| {
            state.out.clear();
            let groups = groups(input)?;
            run_reduce(&groups, &mut state.out, f)?;
            Ok(Output::Values)
        })
    }
}

/// Entry point of a `group_reduce` export.
///
/// # Safety
/// `frame` is the frame pointer the host passed to the export.
pub unsafe fn group_reduce<'a, F>(frame: *mut Frame, udf: &str, f: F) -> u32
where
    F: FnMut(Group<'a>, &mut Emitter) -> Result<(), Failure>,
{
    // SAFETY: forwarded to the caller.
    unsafe {
        call(frame, udf, |input, state| {
            state.out.clear();
            let groups = groups(input)?;
            run_group_reduce(&groups, &mut state.out, f)?;
            Ok(Output::Records)
        })
    }
}

/// Entry point of a `reduce` UDF's combiner export, `weft_combine_<name>` (ABI.md §3a): `op` is
/// `COMBINE_FOLD` (fold the frame's input records in; report the bytes held) or `COMBINE_DRAIN`
/// (describe the records held as the output, and hold nothing after).
///
/// # Safety
/// `frame` is the frame pointer the host passed to the export.
pub unsafe fn combine(frame: *mut Frame, op: u32, udf: &'static str, f: impl Folder) -> u32 {
    // SAFETY: forwarded to the caller. The input of a fold may be the output buffers of the
    // previous call (`state.out`): the fold neither clears nor writes them.
    unsafe {
        call(frame, udf, |input, state| match op {
            weft_abi::COMBINE_FOLD => {
                let records = records(input)?;
                let at = state.combiner(udf);
                let combiner = &mut state.combiners[at].1;
                f.fold_into(combiner, &records)?;
                Ok(Output::Held(combiner.held()))
            }
            weft_abi::COMBINE_DRAIN => {
                let at = state.combiner(udf);
                state.combiners[at].1.drain();
                Ok(Output::Drained(at))
            }
            _ => Err(Failure::abi("unknown combiner op (0 = fold, 1 = drain)").into()),
        })
    }
}
