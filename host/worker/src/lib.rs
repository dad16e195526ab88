//! Weft's task executor: what a worker does with one task, independent of how the task reached it.
//!
//! # Brief overview
//! - [`Pipeline`] — the fused narrow steps of a stage (`map`, `filter`, `flat_map`), run in one
//!   pass over each batch: one guest call per step per batch, no materialisation between steps.
//! - [`ShuffleWriter`] — the map side of a shuffle: hash-partitions records by key (xxh3, stable
//!   across processes), combines values of equal keys with the consumer's `reduce` when there is
//!   one, and writes one Arrow IPC file per reduce partition.
//! - [`Grouper`] — the reduce side: merges shuffle blocks and runs the stage's `reduce` or
//!   `group_reduce` over whole groups, batched, within a memory budget: over it, it spills sorted
//!   runs to disk and merges them at the end (`spill`). A reduce task over millions of records
//!   scatters them by key into parts first and groups part by part (`radix`), each part's tables
//!   small enough for the cache.
//! - [`RegistryModuleSource`] — a cluster worker's modules: fetched from the scheduler's registry,
//!   cached on disk by hash.
//!
//! What a task is — its spec, its outcome — is the scheduler↔worker contract of `weft-task`; this
//! crate runs it. Errors are [`TaskError`]s naming the step, module and function, with their causes
//! as sources; the caller adds job, stage and partition.

mod error;
mod executor;
mod group;
mod malloc;
mod pipeline;
mod radix;
pub mod service;
mod shuffle;
mod source;
mod spill;

pub use error::{DataError, FetchError, ModuleError, PeerError, TaskError, UdfFailure};
pub use executor::{
    Executor, ExecutorStats, ModuleSource, Progress, RemoteFetch, TaskRun, sandbox_limits,
};
pub use group::{DEFAULT_GROUP_BUDGET, Grouper};
pub use malloc::{release_free_memory, tune_malloc};
pub use pipeline::Pipeline;
pub use radix::RECORDS_PER_PART;
pub use shuffle::{
    BlockDecoder, COMBINE_MAX_RATIO, COMBINE_PROBE_RECORDS, GUEST_COMBINE_MIN_MEMORY, ShuffleBlock,
    ShuffleWriter, partition_of, read_block, read_block_bytes, read_block_with,
};
pub use source::RegistryModuleSource;
pub use spill::SpillStats;

/// Target size of the batches executors hand to a guest: big enough that the per-call cost vanishes,
/// small enough to keep a task's memory modest.
pub const BATCH_BYTES: usize = 4 << 20;
