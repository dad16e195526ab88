//! The host half of the batched call protocol (ABI §4–§6) for a wasm guest: a [`WasmInstance`] owns
//! one sandboxed store; it keeps its call frame and input buffer in guest memory across calls, so a
//! steady stream of batches costs one copy in, one call and one copy out per batch. Every pointer
//! the guest hands back is checked against its memory: the guest is untrusted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow_array::{Array, BinaryArray, BooleanArray};
use arrow_buffer::ToByteSlice;
use wasmtime::{InstancePre, Memory, Store, Trap, TypedFunc};
use weft_abi::{Frame, UdfKind};
use weft_batch::{BatchError, Groups, Records, binary_array};

use crate::call::map_count;
use crate::engine::{Engine, Sandbox, SandboxLimits, Stop};
use crate::error::{CallError, ValidationError};
use crate::info::UdfInfo;
use crate::module::Folded;

#[cfg(target_endian = "big")]
compile_error!("weft-host copies Arrow buffers into little-endian wasm memory as they are");

/// Instantiates `module` in a throwaway sandbox, runs `_initialize` and returns `weft_abi_version()`.
pub(crate) fn probe_abi_version(
    engine: &Engine,
    module: &wasmtime::Module,
    limits: &SandboxLimits,
) -> Result<u32, ValidationError> {
    let pre = engine
        .linker()
        .instantiate_pre(module)
        .map_err(|e| ValidationError::Compile(format!("{e:#}")))?;
    let (mut store, instance) =
        start(engine.wasm(), &pre, limits).map_err(ValidationError::Startup)?;
    let version = instance
        .get_typed_func::<(), u32>(&mut store, weft_abi::ABI_VERSION_EXPORT)
        .and_then(|f| f.call(&mut store, ()))
        .map_err(|e| ValidationError::Startup(describe_failure(&store, &e)))?;
    Ok(version)
}

/// Creates a sandboxed store, instantiates and runs `_initialize` if the guest has one.
fn start(
    engine: &wasmtime::Engine,
    pre: &InstancePre<Sandbox>,
    limits: &SandboxLimits,
) -> Result<(Store<Sandbox>, wasmtime::Instance), String> {
    let mut store = Store::new(engine, Sandbox::new(limits));
    store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
    // The deadline is one tick away and renewed by `Sandbox::on_tick` until the call's time is up,
    // so an interrupt is noticed within a tick.
    store.epoch_deadline_callback(|mut ctx| ctx.data_mut().on_tick());
    store.set_epoch_deadline(1);
    let instance = pre
        .instantiate(&mut store)
        .map_err(|e| describe_failure(&store, &e))?;
    if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, weft_abi::INITIALIZE_EXPORT) {
        init.call(&mut store, ())
            .map_err(|e| format!("`_initialize` failed: {}", describe_failure(&store, &e)))?;
    }
    Ok((store, instance))
}

/// A readable account of a failed call: the trap or error, and the tail of the guest's stderr.
fn describe_failure(store: &Store<Sandbox>, error: &wasmtime::Error) -> String {
    let sandbox = store.data();
    let mut text = match (sandbox.stopped, error.downcast_ref::<Trap>()) {
        (Some(Stop::CallTime), _) => format!(
            "ran longer than the time limit of {}",
            humantime::format_duration(sandbox.call_limit())
        ),
        (Some(Stop::TaskTime), _) => "the task's time limit was reached".to_owned(),
        (Some(Stop::Cancelled), _) => "was interrupted: the task was cancelled".to_owned(),
        (None, Some(trap)) => trap.to_string(),
        (None, None) => format!("{error:#}"),
    };
    let stderr = stderr_tail(store);
    if !stderr.is_empty() {
        text.push_str("; guest stderr: ");
        text.push_str(&stderr);
    }
    text
}

/// The last few KiB of what the guest wrote to stderr, for error messages.
/// What a call that failed other than by a trap (an error from a host function) says: the cause
/// first — `proc_exit` named as such — and the wasm backtrace after it.
fn host_failure(error: &wasmtime::Error) -> String {
    let cause = match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        Some(exit) => format!(
            "the guest called proc_exit({}) in the middle of the call",
            exit.0
        ),
        None => error.root_cause().to_string(),
    };
    match error.downcast_ref::<wasmtime::WasmBacktrace>() {
        Some(backtrace) => format!("{cause}\n{backtrace}"),
        None => cause,
    }
}

fn stderr_tail(store: &Store<Sandbox>) -> String {
    const TAIL: usize = 4096;
    let bytes = store.data().stderr.contents();
    let start = bytes.len().saturating_sub(TAIL);
    String::from_utf8_lossy(&bytes[start..])
        .trim_end()
        .to_owned()
}

/// The host's input buffer inside guest memory, reused across calls and grown as needed.
#[derive(Debug, Default, Clone, Copy)]
struct Region {
    ptr: u32,
    cap: u32,
}

/// A wasm guest: a sandboxed store with the module instantiated.
pub(crate) struct WasmInstance {
    store: Store<Sandbox>,
    memory: Memory,
    alloc: TypedFunc<(u32, u32), u32>,
    free: TypedFunc<(u32, u32, u32), ()>,
    funcs: HashMap<String, (UdfKind, TypedFunc<u32, u32>)>,
    /// The combiners (`weft_combine_<name>`) of the `reduce` UDFs that have one, by UDF name.
    combiners: HashMap<String, TypedFunc<(u32, u32), u32>>,
    frame: u32,
    region: Region,
    max_memory_bytes: usize,
    max_batch_output_bytes: u64,
}

impl std::fmt::Debug for WasmInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmInstance")
            .field("udfs", &self.funcs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What a call passes in: a batch of records, or of groups.
enum Input<'a> {
    Records(&'a Records),
    Groups(&'a Groups),
}

impl Input<'_> {
    fn count(&self) -> usize {
        match self {
            Input::Records(r) => r.len(),
            Input::Groups(g) => g.len(),
        }
    }
}

impl WasmInstance {
    /// Runs a `map` UDF: one output record per input record.
    pub fn map(&mut self, udf: &str, input: &Records) -> Result<Records, CallError> {
        let frame = self.call(udf, UdfKind::Map, Input::Records(input))?;
        map_count(input.len(), frame.out_count as usize).map_err(|e| abi(udf, e))?;
        self.read_records(udf, &frame)
    }

    /// Runs a `filter` UDF: which input records to keep.
    pub fn filter(&mut self, udf: &str, input: &Records) -> Result<BooleanArray, CallError> {
        let frame = self.call(udf, UdfKind::Filter, Input::Records(input))?;
        let mem = self.memory.data(&self.store);
        let keep = slice(mem, frame.out_keep, input.len() as u64)
            .ok_or_else(|| abi(udf, "out_keep points outside guest memory".into()))?;
        Ok(keep.iter().map(|&b| Some(b != 0)).collect())
    }

    /// Runs a `flat_map` UDF: any number of records out.
    pub fn flat_map(&mut self, udf: &str, input: &Records) -> Result<Records, CallError> {
        let frame = self.call(udf, UdfKind::FlatMap, Input::Records(input))?;
        self.read_records(udf, &frame)
    }

    /// Runs a `reduce` UDF: one combined value per group, in group order.
    pub fn reduce(&mut self, udf: &str, input: &Groups) -> Result<BinaryArray, CallError> {
        let frame = self.call(udf, UdfKind::Reduce, Input::Groups(input))?;
        if frame.out_count as usize != input.len() {
            return Err(abi(
                udf,
                format!(
                    "a reduce must return one value per group: {} groups, {} values",
                    input.len(),
                    frame.out_count
                ),
            ));
        }
        let mem = self.memory.data(&self.store);
        let bytes = binary_size(mem, frame.out_count, frame.out_values_offsets)
            .map_err(|e| abi(udf, format!("output values: {e}")))?;
        self.check_output(udf, bytes)?;
        read_binary(
            mem,
            frame.out_count,
            frame.out_values_offsets,
            frame.out_values_data,
        )
        .map_err(|e| abi(udf, format!("output values: {e}")))
    }

    /// Runs a `group_reduce` UDF: any number of records out.
    pub fn group_reduce(&mut self, udf: &str, input: &Groups) -> Result<Records, CallError> {
        let frame = self.call(udf, UdfKind::GroupReduce, Input::Groups(input))?;
        self.read_records(udf, &frame)
    }

    /// See [`GuestInstance::map_into_combiner`]. The combiner reads the map's output where the
    /// guest left it: the host neither copies nor checks it (the guest reads its own memory).
    pub fn map_into_combiner(
        &mut self,
        kind: UdfKind,
        udf: &str,
        input: &Records,
        reduce: &str,
    ) -> Result<Folded, CallError> {
        let combine = self.combiner(reduce)?;
        let out = self.call(udf, kind, Input::Records(input))?;
        if kind == UdfKind::Map {
            map_count(input.len(), out.out_count as usize).map_err(|e| abi(udf, e))?;
        }
        let fold = Frame {
            in_count: out.out_count,
            in_keys_offsets: out.out_keys_offsets,
            in_keys_data: out.out_keys_data,
            in_values_offsets: out.out_values_offsets,
            in_values_data: out.out_values_data,
            ..Frame::default()
        };
        self.invoke_combiner(reduce, combine, &fold, weft_abi::COMBINE_FOLD)
            .map(|frame| Folded {
                records: out.out_count as usize,
                held: frame.out_count as usize,
            })
    }

    /// See [`GuestInstance::combine`].
    pub fn combine(&mut self, reduce: &str, input: &Records) -> Result<Folded, CallError> {
        let combine = self.combiner(reduce)?;
        let frame = self.copy_in(reduce, Input::Records(input))?;
        self.invoke_combiner(reduce, combine, &frame, weft_abi::COMBINE_FOLD)
            .map(|frame| Folded {
                records: input.len(),
                held: frame.out_count as usize,
            })
    }

    /// See [`GuestInstance::drain_combiner`].
    pub fn drain_combiner(&mut self, reduce: &str) -> Result<Records, CallError> {
        let combine = self.combiner(reduce)?;
        let frame =
            self.invoke_combiner(reduce, combine, &Frame::default(), weft_abi::COMBINE_DRAIN)?;
        self.read_records(reduce, &frame)
    }

    /// Whether the `reduce` UDF `reduce` has a combiner in the module.
    pub fn has_combiner(&self, reduce: &str) -> bool {
        self.combiners.contains_key(reduce)
    }

    fn combiner(&self, reduce: &str) -> Result<TypedFunc<(u32, u32), u32>, CallError> {
        self.combiners
            .get(reduce)
            .cloned()
            .ok_or_else(|| CallError::NoCombiner(reduce.to_owned()))
    }

    fn invoke_combiner(
        &mut self,
        reduce: &str,
        combine: TypedFunc<(u32, u32), u32>,
        frame: &Frame,
        op: u32,
    ) -> Result<Frame, CallError> {
        self.write_frame(reduce, frame)?;
        self.arm();
        let status = combine.call(&mut self.store, (self.frame, op));
        self.finish(reduce, status)
    }

    /// Everything the guest has written to stdout so far (up to the capture limit).
    pub fn stdout(&self) -> Vec<u8> {
        self.store.data().stdout.contents()
    }

    /// Everything the guest has written to stderr so far (up to the capture limit).
    pub fn stderr(&self) -> Vec<u8> {
        self.store.data().stderr.contents()
    }

    /// The largest linear memory the guest has grown to, in bytes.
    pub fn peak_memory_bytes(&self) -> u64 {
        self.store.data().peak_memory as u64
    }

    /// Whether the guest wrote more to stdout or stderr than the capture limit kept.
    pub fn output_truncated(&self) -> bool {
        let sandbox = self.store.data();
        sandbox.stdout.truncated() || sandbox.stderr.truncated()
    }

    /// Copies the input in, calls the UDF, and returns the frame the guest filled in.
    fn call(&mut self, udf: &str, kind: UdfKind, input: Input<'_>) -> Result<Frame, CallError> {
        let (actual, func) = self
            .funcs
            .get(udf)
            .cloned()
            .ok_or_else(|| CallError::NoSuchUdf(udf.to_owned()))?;
        if actual != kind {
            return Err(CallError::KindMismatch {
                name: udf.to_owned(),
                actual,
                requested: kind,
            });
        }
        let frame = self.copy_in(udf, input)?;
        self.write_frame(udf, &frame)?;
        self.arm();
        let status = func.call(&mut self.store, self.frame);
        self.finish(udf, status)
    }

    /// Copies the input into the guest's input region; returns the frame that describes it.
    fn copy_in(&mut self, udf: &str, input: Input<'_>) -> Result<Frame, CallError> {
        // Layout of the input region: the offset arrays (4-aligned), then the data.
        let (keys, values, groups) = match &input {
            Input::Records(r) => (r.keys(), r.values(), None),
            Input::Groups(g) => (g.keys(), g.values(), Some(g.group_offsets())),
        };
        let count = input.count();
        let keys_offsets_len = (keys.len() as u64 + 1) * 4;
        let values_offsets_len = (values.len() as u64 + 1) * 4;
        let groups_len = groups.map_or(0, |g| g.len() as u64 * 4);
        let keys_data = data_range(keys);
        let values_data = data_range(values);
        let total = keys_offsets_len
            + values_offsets_len
            + groups_len
            + keys_data.len() as u64
            + values_data.len() as u64;
        let total = u32::try_from(total).map_err(|_| {
            CallError::Batch(BatchError::TooLarge(format!(
                "{total} bytes do not fit a 32-bit guest memory"
            )))
        })?;
        self.reserve(udf, total)?;

        let base = self.region.ptr;
        let mut frame = Frame {
            in_count: count as u32,
            ..Frame::default()
        };
        let mut cursor = base;
        let mut place = |len: u64| {
            let at = cursor;
            cursor += len as u32;
            at
        };
        frame.in_keys_offsets = place(keys_offsets_len);
        frame.in_values_offsets = place(values_offsets_len);
        frame.in_groups = if groups.is_some() {
            place(groups_len)
        } else {
            0
        };
        frame.in_keys_data = place(keys_data.len() as u64);
        frame.in_values_data = place(values_data.len() as u64);

        let mem = self.memory.data_mut(&mut self.store);
        let region = slice_mut(mem, base, u64::from(total)).ok_or_else(|| {
            abi(
                udf,
                "weft_alloc returned memory outside the guest's memory".into(),
            )
        })?;
        let (dst, rest) = region.split_at_mut(keys_offsets_len as usize);
        write_offsets(dst, keys);
        let (dst, rest) = rest.split_at_mut(values_offsets_len as usize);
        write_offsets(dst, values);
        let (dst, rest) = rest.split_at_mut(groups_len as usize);
        if let Some(groups) = groups {
            let groups: &[u32] = groups;
            dst.copy_from_slice(groups.to_byte_slice());
        }
        let (dst, rest) = rest.split_at_mut(keys_data.len());
        dst.copy_from_slice(keys_data);
        rest.copy_from_slice(values_data);
        Ok(frame)
    }

    /// Writes the frame of the next call into guest memory.
    fn write_frame(&mut self, udf: &str, frame: &Frame) -> Result<(), CallError> {
        let mem = self.memory.data_mut(&mut self.store);
        let frame_bytes = slice_mut(mem, self.frame, u64::from(weft_abi::FRAME_SIZE))
            .ok_or_else(|| abi(udf, "the call frame lies outside guest memory".into()))?;
        frame_bytes.copy_from_slice(&frame.to_bytes());
        Ok(())
    }

    /// The frame the guest filled in, once its export returned `status`.
    fn finish(
        &mut self,
        udf: &str,
        status: Result<u32, wasmtime::Error>,
    ) -> Result<Frame, CallError> {
        let status = status.map_err(|e| self.call_failure(udf, e))?;
        let mem = self.memory.data(&self.store);
        let frame = slice(mem, self.frame, u64::from(weft_abi::FRAME_SIZE))
            .and_then(|bytes| <&[u8; weft_abi::FRAME_SIZE as usize]>::try_from(bytes).ok())
            .map(Frame::from_bytes)
            .ok_or_else(|| abi(udf, "the call frame lies outside guest memory".into()))?;
        match status {
            weft_abi::STATUS_OK => Ok(frame),
            weft_abi::STATUS_ERROR => {
                let message = slice(mem, frame.error_ptr, u64::from(frame.error_len))
                    .map(crate::error::guest_message)
                    .ok_or_else(|| abi(udf, "error message lies outside guest memory".into()))?;
                Err(CallError::Guest {
                    udf: udf.to_owned(),
                    message,
                })
            }
            other => Err(abi(
                udf,
                format!("unknown status {other} (0 = ok, 1 = error)"),
            )),
        }
    }

    fn read_records(&self, udf: &str, frame: &Frame) -> Result<Records, CallError> {
        let mem = self.memory.data(&self.store);
        let bytes = binary_size(mem, frame.out_count, frame.out_keys_offsets)
            .map_err(|e| abi(udf, format!("output keys: {e}")))?
            + binary_size(mem, frame.out_count, frame.out_values_offsets)
                .map_err(|e| abi(udf, format!("output values: {e}")))?;
        self.check_output(udf, bytes)?;
        let keys = read_binary(
            mem,
            frame.out_count,
            frame.out_keys_offsets,
            frame.out_keys_data,
        )
        .map_err(|e| abi(udf, format!("output keys: {e}")))?;
        let values = read_binary(
            mem,
            frame.out_count,
            frame.out_values_offsets,
            frame.out_values_data,
        )
        .map_err(|e| abi(udf, format!("output values: {e}")))?;
        Ok(Records::new(keys, values)?)
    }

    /// Makes the input region at least `size` bytes, growing geometrically to amortise reallocation.
    fn reserve(&mut self, udf: &str, size: u32) -> Result<(), CallError> {
        if size <= self.region.cap && self.region.ptr != 0 {
            return Ok(());
        }
        if self.region.ptr != 0 {
            let Region { ptr, cap } = self.region;
            self.region = Region::default();
            self.arm();
            self.free
                .call(&mut self.store, (ptr, cap, 8))
                .map_err(|e| self.call_failure(udf, e))?;
        }
        let cap = size
            .max(self.region.cap.saturating_mul(3) / 2)
            .max(64 << 10);
        let cap = if u64::from(cap) > self.max_memory_bytes as u64 {
            size
        } else {
            cap
        };
        let ptr = self.allocate(udf, cap, 8)?;
        self.region = Region { ptr, cap };
        Ok(())
    }

    fn allocate(&mut self, udf: &str, size: u32, align: u32) -> Result<u32, CallError> {
        self.arm();
        let ptr = self
            .alloc
            .call(&mut self.store, (size, align))
            .map_err(|e| self.call_failure(udf, e))?;
        if ptr == 0 {
            return Err(if self.store.data().memory_limit_hit {
                CallError::MemoryLimit {
                    udf: udf.to_owned(),
                    limit: self.max_memory_bytes,
                    stderr: stderr_tail(&self.store),
                }
            } else {
                abi(udf, format!("weft_alloc({size}, {align}) returned 0"))
            });
        }
        if ptr % align != 0 {
            return Err(abi(
                udf,
                format!("weft_alloc({size}, {align}) returned unaligned {ptr}"),
            ));
        }
        Ok(ptr)
    }

    /// Gives the next call its full time limit.
    fn arm(&mut self) {
        self.store.data_mut().arm();
        self.store.set_epoch_deadline(1);
    }

    /// Fails a call whose output of `bytes` is over the limit of one call's output.
    fn check_output(&self, udf: &str, bytes: u64) -> Result<(), CallError> {
        if bytes > self.max_batch_output_bytes {
            return Err(CallError::OutputLimit {
                udf: udf.to_owned(),
                bytes,
                limit: self.max_batch_output_bytes,
            });
        }
        Ok(())
    }

    /// Makes every call fail once `deadline` has passed, with the task time limit `limit` named.
    pub fn set_task_deadline(&mut self, deadline: std::time::Instant, limit: std::time::Duration) {
        self.store.data_mut().task_deadline = Some((deadline, limit));
    }

    /// Lets `flag` stop this instance: once it is raised, the running call (or the next) fails with
    /// [`CallError::Cancelled`] within an epoch tick.
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.store.data_mut().interrupt = Some(flag);
    }

    fn call_failure(&self, udf: &str, error: wasmtime::Error) -> CallError {
        let udf = udf.to_owned();
        let sandbox = self.store.data();
        match sandbox.stopped {
            Some(Stop::Cancelled) => return CallError::Cancelled { udf },
            Some(Stop::CallTime) => {
                return CallError::TimeLimit {
                    udf,
                    limit: sandbox.call_limit(),
                };
            }
            Some(Stop::TaskTime) => {
                return CallError::TaskTimeLimit {
                    udf,
                    limit: sandbox.task_deadline.map(|(_, l)| l).unwrap_or_default(),
                };
            }
            None => {}
        }
        let stderr = stderr_tail(&self.store);
        if self.store.data().memory_limit_hit {
            return CallError::MemoryLimit {
                udf,
                limit: self.max_memory_bytes,
                stderr,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => CallError::StackLimit {
                udf,
                limit: self.store.engine().get_max_wasm_stack(),
            },
            Some(trap) => CallError::Trap {
                udf,
                trap: trap.to_string(),
                stderr,
            },
            None => CallError::Trap {
                udf,
                trap: host_failure(&error),
                stderr,
            },
        }
    }
}

impl WasmInstance {
    /// Instantiates `pre` (a module whose UDFs are `udfs`) in a fresh sandbox under `limits`, runs
    /// `_initialize`, checks the ABI version the guest reports, and allocates the call frame.
    pub(crate) fn new(
        pre: &InstancePre<Sandbox>,
        udfs: &[UdfInfo],
        limits: &SandboxLimits,
    ) -> Result<WasmInstance, CallError> {
        let (mut store, instance) =
            start(pre.module().engine(), pre, limits).map_err(CallError::Instantiate)?;
        let fail = |store: &Store<Sandbox>, e: wasmtime::Error| {
            CallError::Instantiate(describe_failure(store, &e))
        };
        let version = instance
            .get_typed_func::<(), u32>(&mut store, weft_abi::ABI_VERSION_EXPORT)
            .and_then(|f| f.call(&mut store, ()))
            .map_err(|e| fail(&store, e))?;
        if version != weft_abi::ABI_VERSION {
            return Err(CallError::Instantiate(format!(
                "the guest reports ABI version {version}; this host implements {}",
                weft_abi::ABI_VERSION
            )));
        }
        let memory = instance
            .get_memory(&mut store, weft_abi::MEMORY_EXPORT)
            .ok_or_else(|| CallError::Instantiate("the guest exports no memory".into()))?;
        let alloc = instance
            .get_typed_func::<(u32, u32), u32>(&mut store, weft_abi::ALLOC_EXPORT)
            .map_err(|e| fail(&store, e))?;
        let free = instance
            .get_typed_func::<(u32, u32, u32), ()>(&mut store, weft_abi::FREE_EXPORT)
            .map_err(|e| fail(&store, e))?;
        let mut funcs = HashMap::with_capacity(udfs.len());
        let mut combiners = HashMap::new();
        for udf in udfs {
            let export = format!("weft_{}_{}", udf.kind, udf.name);
            let func = instance
                .get_typed_func::<u32, u32>(&mut store, &export)
                .map_err(|e| fail(&store, e))?;
            funcs.insert(udf.name.clone(), (udf.kind, func));
            if udf.kind != UdfKind::Reduce {
                continue;
            }
            let combiner = format!("{}{}", weft_abi::COMBINE_EXPORT_PREFIX, udf.name);
            if instance.get_export(&mut store, &combiner).is_some() {
                let func = instance
                    .get_typed_func::<(u32, u32), u32>(&mut store, &combiner)
                    .map_err(|e| fail(&store, e))?;
                combiners.insert(udf.name.clone(), func);
            }
        }
        let mut guest = WasmInstance {
            store,
            memory,
            alloc,
            free,
            funcs,
            combiners,
            frame: 0,
            region: Region::default(),
            max_memory_bytes: limits.max_memory_bytes,
            max_batch_output_bytes: limits.max_batch_output_bytes,
        };
        guest.frame = guest
            .allocate("(setup)", weft_abi::FRAME_SIZE, weft_abi::FRAME_ALIGN)
            .map_err(|e| CallError::Instantiate(e.to_string()))?;
        Ok(guest)
    }
}

fn abi(udf: &str, detail: String) -> CallError {
    CallError::Abi {
        udf: udf.to_owned(),
        detail,
    }
}

/// The bytes an array's items span (arrays may be slices of larger buffers).
fn data_range(array: &BinaryArray) -> &[u8] {
    let offsets = array.value_offsets();
    let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
    &array.value_data()[start..end]
}

/// Writes an array's offsets rebased to start at 0, as the ABI promises for inputs.
fn write_offsets(dst: &mut [u8], array: &BinaryArray) {
    let offsets = array.value_offsets();
    let base = offsets[0];
    if base == 0 {
        dst.copy_from_slice(offsets.to_byte_slice());
    } else {
        for (chunk, &o) in dst.chunks_exact_mut(4).zip(offsets) {
            chunk.copy_from_slice(&((o - base) as u32).to_le_bytes());
        }
    }
}

/// Reads `count` binary items a guest described by an offsets pointer and a data pointer, checking
/// every bound (the guest is untrusted) and rebasing the offsets to 0.
fn read_binary(
    mem: &[u8],
    count: u32,
    offsets_ptr: u32,
    data_ptr: u32,
) -> Result<BinaryArray, String> {
    if count == 0 {
        return Ok(binary_array(vec![0], Vec::new()));
    }
    let raw = slice(mem, offsets_ptr, (u64::from(count) + 1) * 4)
        .ok_or("the offsets array lies outside guest memory")?;
    let mut offsets = Vec::with_capacity(count as usize + 1);
    let mut previous = 0u32;
    let mut first = 0u32;
    for (i, chunk) in raw.chunks_exact(4).enumerate() {
        let o = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        if i == 0 {
            first = o;
        } else if o < previous {
            return Err(format!(
                "offset {i} ({o}) is less than offset {} ({previous})",
                i - 1
            ));
        }
        previous = o;
        offsets.push((o - first) as i32);
    }
    let len = previous - first;
    if len > i32::MAX as u32 {
        return Err(format!(
            "{len} bytes of data is over the 2 GiB limit of a batch"
        ));
    }
    let start = u64::from(data_ptr) + u64::from(first);
    let data = u32::try_from(start)
        .ok()
        .and_then(|start| slice(mem, start, u64::from(len)))
        .ok_or("the data lies outside guest memory")?;
    Ok(binary_array(offsets, data.to_vec()))
}

/// The bytes `count` binary items take as a batch (their data and offsets), from their first and
/// last offsets, before any is copied; the offsets in between are checked when they are read.
fn binary_size(mem: &[u8], count: u32, offsets_ptr: u32) -> Result<u64, String> {
    if count == 0 {
        return Ok(0);
    }
    let at = |i: u64| {
        u32::try_from(u64::from(offsets_ptr) + i * 4)
            .ok()
            .and_then(|ptr| slice(mem, ptr, 4))
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("the offsets array lies outside guest memory")
    };
    let (first, last) = (at(0)?, at(u64::from(count))?);
    let data = last
        .checked_sub(first)
        .ok_or_else(|| format!("the last offset ({last}) is less than the first ({first})"))?;
    Ok(u64::from(data) + (u64::from(count) + 1) * 4)
}

fn slice(mem: &[u8], ptr: u32, len: u64) -> Option<&[u8]> {
    let start = ptr as usize;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    mem.get(start..end)
}

fn slice_mut(mem: &mut [u8], ptr: u32, len: u64) -> Option<&mut [u8]> {
    let start = ptr as usize;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    mem.get_mut(start..end)
}
