//! The entry points of native builds (every target but wasm32): the same drivers and the same
//! messages as the wasm exports of `wasm.rs`, with the input read from plain slices
//! ([`weft_abi::native::Input`]) instead of a frame, and the output handed to a callback.
//!
//! This is what lets the host run a guest crate's UDFs compiled into its own process, to measure
//! what the sandbox costs against the very same code (see `weft_host::GuestModule::native`). The
//! macros give each UDF a `__WEFT_NATIVE_<function>` constant whose call lands here.
//!
//! As in `wasm.rs`, the output buffers live in one [`State`] per thread for its whole life, cleared
//! (keeping their capacity) at the start of each call: the output of a call is only read by the
//! callback, before the next call on that thread, so a batch allocates nothing for its output in
//! steady state either.

use std::cell::RefCell;
use std::fmt::Write;

use weft_abi::native::{Binary, CombineState, Input, Output};

use super::{
    BinaryArray, CallError, Combiner, Failure, Folder, Group, Groups, Records, run_filter,
    run_group_reduce, run_records, run_reduce,
};
use crate::codec::Encode;
use crate::emitter::Emitter;

/// Where a native call's result goes: the output, or the error message. Both are borrowed from the
/// thread's [`State`] and valid only during the callback.
pub type Sink<'s> = &'s mut dyn FnMut(Result<&Output<'_>, &str>);

/// The buffers a call's output is built in.
struct State {
    /// Output records (`map`, `flat_map`, `group_reduce`) or, values only, `reduce` results.
    out: Emitter,
    /// `filter`'s keep bytes.
    keep: Vec<u8>,
    /// The message of a failed call.
    error: String,
}

impl State {
    fn new() -> State {
        State {
            out: Emitter::new(),
            keep: Vec::new(),
            error: String::new(),
        }
    }
}

thread_local! {
    // One per thread: a worker runs tasks on several threads at once, each its own caller.
    static STATE: RefCell<State> = RefCell::new(State::new());
}

/// Which buffers of [`State`] hold a successful call's output.
enum Produced {
    Records,
    Keep,
    Values,
}

/// Runs one call: `body` reads the input and fills the state's buffers; the result goes to `sink`.
fn call(sink: Sink<'_>, udf: &str, body: impl FnOnce(&mut State) -> Result<Produced, CallError>) {
    let run = |state: &mut State| {
        state.out.clear();
        state.keep.clear();
        state.error.clear();
        match body(state) {
            Ok(produced) => sink(Ok(&output(state, produced))),
            Err(error) => {
                // Writing to a String cannot fail.
                let _ = write!(state.error, "{}", error.display(udf));
                sink(Err(&state.error));
            }
        }
    };
    // The thread's buffers are busy only if a callback (or a UDF) calls a native UDF in turn, and
    // gone only while the thread exits: either way, fresh buffers for this one call do as well.
    let mut run = Some(run);
    let _ = STATE.try_with(|cell| {
        if let Ok(mut state) = cell.try_borrow_mut()
            && let Some(run) = run.take()
        {
            run(&mut state);
        }
    });
    if let Some(run) = run {
        run(&mut State::new());
    }
}

fn binary(array: &crate::emitter::BinaryBuilder) -> Binary<'_> {
    Binary {
        offsets: &array.offsets,
        data: &array.data,
    }
}

/// The view of output records.
fn records_output(out: &Emitter) -> Output<'_> {
    Output {
        count: out.len(),
        keys: binary(&out.keys),
        values: binary(&out.values),
        keep: &[],
    }
}

/// The view of a successful call's output.
fn output(state: &State, produced: Produced) -> Output<'_> {
    match produced {
        Produced::Records => records_output(&state.out),
        Produced::Keep => Output {
            keep: &state.keep,
            ..Output::default()
        },
        Produced::Values => Output {
            count: state.out.values.len(),
            values: binary(&state.out.values),
            ..Output::default()
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the input. The caller's slices are memory-safe by construction; what is checked is that
// they describe as many items as the count says, as `wasm.rs` checks the frame, and every item
// access is bounds-checked by the views.

/// A binary array of `count` items: `count + 1` offsets (none when `count` is 0).
fn array<'a>(count: usize, binary: &Binary<'a>) -> Result<BinaryArray<'a>, Failure> {
    if count == 0 {
        return Ok(BinaryArray::EMPTY);
    }
    if binary.offsets.len() != count.saturating_add(1) {
        return Err(Failure::abi(
            "an offsets array does not have one entry more than its items",
        ));
    }
    Ok(BinaryArray::new(binary.offsets, binary.data))
}

fn records<'a>(input: &Input<'a>) -> Result<Records<'a>, Failure> {
    Ok(Records::new(
        array(input.count, &input.keys)?,
        array(input.count, &input.values)?,
    ))
}

fn groups<'a>(input: &Input<'a>) -> Result<Groups<'a>, Failure> {
    let count = input.count;
    if count == 0 {
        return Ok(Groups::new(BinaryArray::EMPTY, &[], BinaryArray::EMPTY));
    }
    let keys = array(count, &input.keys)?;
    if input.groups.len() != count.saturating_add(1) {
        return Err(Failure::abi(
            "the group indexes do not have one entry more than the groups",
        ));
    }
    let values = array(input.groups[count] as usize, &input.values)?;
    Ok(Groups::new(keys, input.groups, values))
}

// ---------------------------------------------------------------------------------------------
// One entry point per kind, with the bounds of its wasm counterpart: a native build passes every
// generated closure through one of these, so it type-checks exactly as the wasm build does.

/// Entry point of a native `map`.
pub fn map<'a, F>(input: &Input<'a>, sink: Sink<'_>, udf: &str, f: F)
where
    F: FnMut(&'a [u8], &'a [u8], &mut Emitter) -> Result<(), Failure>,
{
    records_call(input, sink, udf, f);
}

/// Entry point of a native `flat_map`.
pub fn flat_map<'a, F>(input: &Input<'a>, sink: Sink<'_>, udf: &str, f: F)
where
    F: FnMut(&'a [u8], &'a [u8], &mut Emitter) -> Result<(), Failure>,
{
    records_call(input, sink, udf, f);
}

fn records_call<'a, F>(input: &Input<'a>, sink: Sink<'_>, udf: &str, f: F)
where
    F: FnMut(&'a [u8], &'a [u8], &mut Emitter) -> Result<(), Failure>,
{
    call(sink, udf, |state| {
        let records = records(input)?;
        run_records(&records, &mut state.out, f)?;
        Ok(Produced::Records)
    });
}

/// Entry point of a native `filter`.
pub fn filter<'a, F>(input: &Input<'a>, sink: Sink<'_>, udf: &str, f: F)
where
    F: FnMut(&'a [u8], &'a [u8]) -> Result<bool, Failure>,
{
    call(sink, udf, |state| {
        let records = records(input)?;
        run_filter(&records, &mut state.keep, f)?;
        Ok(Produced::Keep)
    });
}

/// Entry point of a native `reduce`.
pub fn reduce<'a, V, F>(input: &Input<'a>, sink: Sink<'_>, udf: &str, f: F)
where
    V: Encode,
    F: FnMut(Group<'a>) -> Result<V, Failure>,
{
    call(sink, udf, |state| {
        let groups = groups(input)?;
        run_reduce(&groups, &mut state.out, f)?;
        Ok(Produced::Values)
    });
}

/// Entry point of a native `group_reduce`.
pub fn group_reduce<'a, F>(input: &Input<'a>, sink: Sink<'_>, udf: &str, f: F)
where
    F: FnMut(Group<'a>, &mut Emitter) -> Result<(), Failure>,
{
    call(sink, udf, |state| {
        let groups = groups(input)?;
        run_group_reduce(&groups, &mut state.out, f)?;
        Ok(Produced::Records)
    });
}

/// Entry point of a native `reduce`'s combiner (what `weft_combine_<name>` is to a module): the
/// combiner lives in `state`, which the caller keeps per instance (a [`Combiner`] is put there on
/// the first call), so tasks running at once on other threads each have their own.
pub fn combine(
    op: u32,
    input: &Input<'_>,
    state: &mut CombineState,
    sink: Sink<'_>,
    udf: &str,
    f: impl Folder,
) {
    let fail = |sink: Sink<'_>, error: CallError| sink(Err(&error.display(udf).to_string()));
    let combiner = match state {
        Some(held) => held.downcast_mut::<Combiner>(),
        None => state.insert(Box::new(Combiner::new())).downcast_mut(),
    };
    let Some(combiner) = combiner else {
        return fail(
            sink,
            Failure::abi("the combiner state is not this UDF's").into(),
        );
    };
    match op {
        weft_abi::COMBINE_FOLD => {
            let folded = records(input)
                .map_err(CallError::from)
                .and_then(|records| f.fold_into(combiner, &records));
            match folded {
                Ok(()) => sink(Ok(&Output {
                    count: combiner.held(),
                    ..Output::default()
                })),
                Err(error) => fail(sink, error),
            }
        }
        weft_abi::COMBINE_DRAIN => sink(Ok(&records_output(combiner.drain()))),
        _ => fail(
            sink,
            Failure::abi("unknown combiner op (0 = fold, 1 = drain)").into(),
        ),
    }
}
