//! Native modules: UDFs compiled into the host process instead of into wasm, run behind the same
//! [`GuestModule`](crate::GuestModule)/[`GuestInstance`](crate::GuestInstance) API, so that the very same job (same plan, executor, grouping
//! and shuffle) can run with native calls in place of wasm calls. This is how Weft measures what the
//! sandbox costs; the sandbox is the product.
//!
//! The Rust SDK builds a guest crate natively too: each UDF then has a `__WEFT_NATIVE_<function>`
//! constant (a [`NativeUdf`]), and [`GuestModule::native`](crate::GuestModule::native) makes a module of a list of them
//! (`weft_guest::native_udfs![...]`). A call borrows the batch's Arrow buffers as the input view
//! (offsets rebased to 0 when an array is a slice, as the ABI promises) instead of copying them into
//! guest memory, and copies the output once into Arrow arrays, checked as the wasm path checks a
//! guest's output.
//!
//! A native UDF is trusted code in the host's address space. None of the sandbox applies: no memory
//! or time limit, no WASI (what it prints goes to the process's own stdout and stderr, so
//! [`GuestInstance::stdout`](crate::GuestInstance::stdout) and `stderr` stay empty), and an interrupt is only
//! seen between calls, not during one. A panic is caught at the call and reported as a trap.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::{Array, BinaryArray, BooleanArray};
use weft_abi::UdfKind;
use weft_abi::native::{Binary, CombineState, Input, NativeCall, NativeCombine, NativeUdf, Output};

use weft_batch::{Groups, Records, binary_array};

use crate::call::map_count;
use crate::error::{CallError, ValidationError};
use crate::info::UdfInfo;
use crate::module::Folded;

/// The UDFs of a native module, by name.
#[derive(Clone)]
pub(crate) struct NativeModule {
    calls: Arc<HashMap<String, (UdfKind, NativeCall)>>,
    /// The combiners of the `reduce` UDFs that have one.
    combiners: Arc<HashMap<String, NativeCombine>>,
}

impl std::fmt::Debug for NativeModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.calls.keys().collect();
        names.sort_unstable();
        f.debug_struct("NativeModule")
            .field("udfs", &names)
            .finish()
    }
}

impl NativeModule {
    /// A module of `udfs`, with their UDF table, checked as registration checks a module's
    /// exports: at least one UDF, valid names, each name once.
    pub(crate) fn new(udfs: &[NativeUdf]) -> Result<(NativeModule, Vec<UdfInfo>), ValidationError> {
        if udfs.is_empty() {
            return Err(ValidationError::NoUdfs);
        }
        let mut calls = HashMap::with_capacity(udfs.len());
        let mut combiners = HashMap::new();
        let mut infos = Vec::with_capacity(udfs.len());
        for udf in udfs {
            if !weft_abi::is_valid_udf_name(udf.name) {
                return Err(ValidationError::UnknownWeftExport(format!(
                    "weft_{}_{}",
                    udf.kind, udf.name
                )));
            }
            if let Some(&(first, _)) = calls.get(udf.name) {
                return Err(ValidationError::DuplicateUdf {
                    name: udf.name.to_owned(),
                    first,
                    second: udf.kind,
                });
            }
            calls.insert(udf.name.to_owned(), (udf.kind, udf.call));
            if let (UdfKind::Reduce, Some(combine)) = (udf.kind, udf.combine) {
                combiners.insert(udf.name.to_owned(), combine);
            }
            infos.push(UdfInfo {
                name: udf.name.to_owned(),
                kind: udf.kind,
                combiner: udf.kind == UdfKind::Reduce && udf.combine.is_some(),
                // Native UDFs state no facts: they are measured with the keys a module gets by
                // default.
                key_unused: false,
            });
        }
        infos.sort();
        let module = NativeModule {
            calls: Arc::new(calls),
            combiners: Arc::new(combiners),
        };
        Ok((module, infos))
    }

    pub(crate) fn instantiate(&self) -> NativeInstance {
        NativeInstance {
            calls: self.calls.clone(),
            combiners: self
                .combiners
                .iter()
                .map(|(name, &combine)| (name.clone(), (combine, None)))
                .collect(),
            interrupt: None,
            scratch: Scratch::default(),
        }
    }
}

/// Offsets rebased to 0, for input arrays that are slices of larger ones; kept across calls.
#[derive(Debug, Default)]
struct Scratch {
    keys: Vec<u32>,
    values: Vec<u32>,
}

/// An instance of a native module: nothing to set up, only the buffers reused across calls.
pub(crate) struct NativeInstance {
    calls: Arc<HashMap<String, (UdfKind, NativeCall)>>,
    /// Each combiner and its state (this instance's running values), by `reduce` name.
    combiners: HashMap<String, (NativeCombine, CombineState)>,
    interrupt: Option<Arc<AtomicBool>>,
    scratch: Scratch,
}

impl std::fmt::Debug for NativeInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeInstance")
            .field("udfs", &self.calls.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl NativeInstance {
    pub(crate) fn map(&mut self, udf: &str, input: &Records) -> Result<Records, CallError> {
        let (keys, values) = (input.keys(), input.values());
        self.call(udf, UdfKind::Map, keys, values, None, |out| {
            map_count(input.len(), out.count)?;
            read_records(out)
        })
    }

    pub(crate) fn filter(&mut self, udf: &str, input: &Records) -> Result<BooleanArray, CallError> {
        let (keys, values) = (input.keys(), input.values());
        self.call(udf, UdfKind::Filter, keys, values, None, |out| {
            if out.keep.len() != input.len() {
                return Err(format!(
                    "a filter must return one keep byte per input: {} in, {} out",
                    input.len(),
                    out.keep.len()
                ));
            }
            Ok(out.keep.iter().map(|&b| Some(b != 0)).collect())
        })
    }

    pub(crate) fn flat_map(&mut self, udf: &str, input: &Records) -> Result<Records, CallError> {
        let (keys, values) = (input.keys(), input.values());
        self.call(udf, UdfKind::FlatMap, keys, values, None, read_records)
    }

    pub(crate) fn reduce(&mut self, udf: &str, input: &Groups) -> Result<BinaryArray, CallError> {
        let (keys, values, groups) = (input.keys(), input.values(), input.group_offsets());
        self.call(udf, UdfKind::Reduce, keys, values, Some(groups), |out| {
            if out.count != input.len() {
                return Err(format!(
                    "a reduce must return one value per group: {} groups, {} values",
                    input.len(),
                    out.count
                ));
            }
            copy_binary(out.count, &out.values).map_err(|e| format!("output values: {e}"))
        })
    }

    pub(crate) fn group_reduce(&mut self, udf: &str, input: &Groups) -> Result<Records, CallError> {
        let (keys, values, groups) = (input.keys(), input.values(), input.group_offsets());
        self.call(
            udf,
            UdfKind::GroupReduce,
            keys,
            values,
            Some(groups),
            read_records,
        )
    }

    pub(crate) fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    /// A native call cannot be stopped once it runs: the interrupt flag is honoured between calls.
    fn check_interrupt(&self, udf: &str) -> Result<(), CallError> {
        match &self.interrupt {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(CallError::Cancelled {
                udf: udf.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn has_combiner(&self, reduce: &str) -> bool {
        self.combiners.contains_key(reduce)
    }

    /// The `map` or `flat_map` call, whose output view goes straight to the combiner during its
    /// callback, as the wasm path leaves it in guest memory for the combiner.
    pub(crate) fn map_into_combiner(
        &mut self,
        kind: UdfKind,
        udf: &str,
        input: &Records,
        reduce: &str,
    ) -> Result<Folded, CallError> {
        // Out of the map while the call borrows the instance; put back whatever happens.
        let (combine, mut state) = self
            .combiners
            .remove(reduce)
            .ok_or_else(|| CallError::NoCombiner(reduce.to_owned()))?;
        let (keys, values) = (input.keys(), input.values());
        let folded = self.call(udf, kind, keys, values, None, |out| {
            if kind == UdfKind::Map {
                map_count(input.len(), out.count)?;
            }
            let records = Input {
                count: out.count,
                keys: out.keys,
                values: out.values,
                groups: &[],
            };
            Ok(combine_call(
                combine,
                weft_abi::COMBINE_FOLD,
                &records,
                &mut state,
                reduce,
                |held| {
                    Ok(Folded {
                        records: out.count,
                        held: held.count,
                    })
                },
            ))
        });
        self.combiners.insert(reduce.to_owned(), (combine, state));
        folded?
    }

    pub(crate) fn combine(&mut self, reduce: &str, input: &Records) -> Result<Folded, CallError> {
        self.check_interrupt(reduce)?;
        let Scratch { keys, values } = &mut self.scratch;
        let records = Input {
            count: input.len(),
            keys: view(input.keys(), keys),
            values: view(input.values(), values),
            groups: &[],
        };
        let (combine, state) = self
            .combiners
            .get_mut(reduce)
            .ok_or_else(|| CallError::NoCombiner(reduce.to_owned()))?;
        combine_call(
            *combine,
            weft_abi::COMBINE_FOLD,
            &records,
            state,
            reduce,
            |held| {
                Ok(Folded {
                    records: input.len(),
                    held: held.count,
                })
            },
        )
    }

    pub(crate) fn drain_combiner(&mut self, reduce: &str) -> Result<Records, CallError> {
        self.check_interrupt(reduce)?;
        let (combine, state) = self
            .combiners
            .get_mut(reduce)
            .ok_or_else(|| CallError::NoCombiner(reduce.to_owned()))?;
        combine_call(
            *combine,
            weft_abi::COMBINE_DRAIN,
            &Input::default(),
            state,
            reduce,
            read_records,
        )
    }

    /// Calls the UDF on the batch and reads its output with `read` (whose error is an ABI
    /// violation), during the UDF's callback.
    fn call<T>(
        &mut self,
        udf: &str,
        kind: UdfKind,
        keys: &BinaryArray,
        values: &BinaryArray,
        groups: Option<&[u32]>,
        read: impl FnOnce(&Output<'_>) -> Result<T, String>,
    ) -> Result<T, CallError> {
        let &(actual, call) = self
            .calls
            .get(udf)
            .ok_or_else(|| CallError::NoSuchUdf(udf.to_owned()))?;
        if actual != kind {
            return Err(CallError::KindMismatch {
                name: udf.to_owned(),
                actual,
                requested: kind,
            });
        }
        self.check_interrupt(udf)?;
        let Scratch {
            keys: keys_scratch,
            values: values_scratch,
        } = &mut self.scratch;
        let input = Input {
            // The count the ABI passes: records, or groups (one key each).
            count: keys.len(),
            keys: view(keys, keys_scratch),
            values: view(values, values_scratch),
            groups: groups.unwrap_or(&[]),
        };

        invoke(udf, |sink| call(&input, sink), read)
    }
}

/// One call of a native combiner, its output read by `read`.
fn combine_call<T>(
    combine: NativeCombine,
    op: u32,
    input: &Input<'_>,
    state: &mut CombineState,
    reduce: &str,
    read: impl FnOnce(&Output<'_>) -> Result<T, String>,
) -> Result<T, CallError> {
    invoke(reduce, |sink| combine(op, input, state, sink), read)
}

/// Runs a native call (`run` gets its result callback) and reads its output with `read` (whose
/// error is an ABI violation), during the callback.
fn invoke<T>(
    udf: &str,
    run: impl FnOnce(&mut dyn FnMut(Result<&Output<'_>, &str>)),
    read: impl FnOnce(&Output<'_>) -> Result<T, String>,
) -> Result<T, CallError> {
    let mut read = Some(read);
    let mut result = None;
    let mut sink = |outcome: Result<&Output<'_>, &str>| {
        // The SDK calls back once; a second call (a broken native UDF) is ignored.
        let Some(read) = read.take() else { return };
        result = Some(match outcome {
            Ok(output) => read(output).map_err(|detail| abi(udf, detail)),
            Err(message) => Err(CallError::Guest {
                udf: udf.to_owned(),
                message: crate::error::guest_message(message.as_bytes()),
            }),
        });
    };
    // A panic is the UDF's failure, as a trap is in wasm: catch it here rather than let it
    // take the worker's thread (the panic hook has printed the message and location already).
    panic::catch_unwind(AssertUnwindSafe(|| run(&mut sink))).map_err(|payload| {
        CallError::Trap {
            udf: udf.to_owned(),
            trap: format!("panicked: {}", panic_message(payload.as_ref())),
            stderr: String::new(),
        }
    })?;
    result.unwrap_or_else(|| {
        Err(abi(
            udf,
            "the native UDF returned without giving a result".into(),
        ))
    })
}

fn abi(udf: &str, detail: String) -> CallError {
    CallError::Abi {
        udf: udf.to_owned(),
        detail,
    }
}

/// The message of a panic payload (`panic!` with a literal or with arguments), if it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// An Arrow binary array as the ABI's view: its own buffers when its offsets start at 0, else
/// offsets rebased into `scratch` and the data from the first item on.
fn view<'a>(array: &'a BinaryArray, scratch: &'a mut Vec<u32>) -> Binary<'a> {
    let offsets = array.value_offsets();
    let (first, last) = (offsets[0], offsets[offsets.len() - 1]);
    let data = &array.value_data()[first as usize..last as usize];
    if first == 0 {
        // Arrow's offsets of a valid array are non-negative i32s: the same bits as the ABI's u32s,
        // in a buffer aligned for either.
        let offsets = array.offsets().inner().inner().typed_data::<u32>();
        return Binary { offsets, data };
    }
    scratch.clear();
    scratch.extend(offsets.iter().map(|&o| (o - first) as u32));
    Binary {
        offsets: scratch,
        data,
    }
}

/// The records a `map`, `flat_map` or `group_reduce` returned.
fn read_records(out: &Output<'_>) -> Result<Records, String> {
    let keys = copy_binary(out.count, &out.keys).map_err(|e| format!("output keys: {e}"))?;
    let values = copy_binary(out.count, &out.values).map_err(|e| format!("output values: {e}"))?;
    Records::new(keys, values).map_err(|e| e.to_string())
}

/// Copies `count` items of a view into an Arrow array, checking every bound as the wasm path
/// checks a guest's output (the offsets rebased to 0).
fn copy_binary(count: usize, binary: &Binary<'_>) -> Result<BinaryArray, String> {
    if count == 0 {
        return Ok(binary_array(vec![0], Vec::new()));
    }
    if binary.offsets.len() != count + 1 {
        return Err(format!(
            "{} offsets for {count} items (one more than the items are needed)",
            binary.offsets.len()
        ));
    }
    let first = binary.offsets[0];
    let mut previous = first;
    let mut offsets = Vec::with_capacity(count + 1);
    for (i, &o) in binary.offsets.iter().enumerate() {
        if o < previous {
            return Err(format!(
                "offset {i} ({o}) is less than offset {} ({previous})",
                i - 1
            ));
        }
        previous = o;
        let rebased = i32::try_from(o - first).map_err(|_| {
            format!(
                "{} bytes of data is over the 2 GiB limit of a batch",
                o - first
            )
        })?;
        offsets.push(rebased);
    }
    let data = binary
        .data
        .get(first as usize..previous as usize)
        .ok_or("the offsets point past the end of the data")?;
    Ok(binary_array(offsets, data.to_vec()))
}
