//! Jobs: the job file a user writes, its resolution against the module registry, and the plan of
//! stages the scheduler runs.
//!
//! # Brief overview
//! 1. [`JobSpec::parse`] / [`JobSpec::from_file`] read a job file (TOML, format below) and check
//!    everything that can be checked without the registry. Errors ([`JobFileError`]) start with
//!    `FILE:LINE:COLUMN:` and name the field, e.g. `job.toml:7:1: step 2: a step needs exactly
//!    one of map, filter, flat_map, reduce, group_reduce (found: map, reduce)`.
//! 2. [`JobSpec::resolve`] turns every step's module reference into a content id
//!    ([`ModuleId`](crate::ModuleId)) and checks that the function exists and has the step's
//!    kind → [`ResolvedJob`]. Every mistake in a job file is reported here at the latest, before
//!    any task runs.
//! 3. [`ResolvedJob::plan`] cuts the steps into stages at every shuffle (Spark's rule) and the
//!    input files into byte-range splits, of the job file's size or of one chosen for the
//!    cluster's task slots ([`AutoSplit`]) → [`Plan`], whose `Display` is what `weft plan` prints.
//!
//! # The job file
//!
//! ```toml
//! name = "wordcount"
//!
//! [input]
//! path = "data/*.txt"
//! format = "text"
//! split_size = "64MiB"   # best left out: chosen for the cluster's slots
//!
//! [[step]]
//! flat_map = "wordcount/split_words"
//!
//! [[step]]
//! reduce = "wordcount/sum"
//! partitions = 8
//!
//! [output]
//! path = "out/wordcount"
//! format = "text"
//! partitions = 4
//!
//! [shuffle]
//! compression = "none"
//! ```
//!
//! Unknown keys anywhere are errors, and so is a value of the wrong type.
//!
//! **Top level**
//! - `name` (string, required): the job's name, shown in plans and job status. 1–128 characters of
//!   `A-Z a-z 0-9 _ - .`.
//!
//! **`[input]`** (required): what the job reads.
//! - `path` (string, required): a file, a directory (every file in it) or a glob (`data/*.txt`).
//!   A relative path is relative to the directory of the job file, not to the working directory.
//!   `weft run --input` replaces it ([`JobSpec::with_input`]).
//! - `format` (string, default `"text"`): how files are cut into records. `"text"`: one record per
//!   line; `"csv"`: one record per CSV record (RFC 4180: quotes, `""` escapes, quoted newlines);
//!   `"jsonl"`: one record per line, each line a JSON value. The reader (weft-io) defines each
//!   format's exact key and value encoding; a CSV record reaches UDFs as its fields, unquoted, in
//!   the row encoding (`weft_abi::row`, the Rust SDK's `Row`), with the header's names.
//! - `header` (boolean, default `true`; `csv` only): whether the first record of each file is a
//!   header naming the columns rather than a record. With a header, a record of another number
//!   of fields is malformed (see `on_error`).
//! - `delimiter` (string of one ASCII character other than a quote, CR or LF, default `","`;
//!   `csv` only): the field separator of the files.
//! - `on_error` (string, default `"fail"`): what map tasks do with a malformed record (a line that
//!   is not JSON, a CSV record whose width differs from its header's): `"fail"` the job, naming
//!   the file, the line and its start; `"skip"` it, counting it; or `"quarantine"` it: skip and
//!   count it, and keep it with its file, line and reason in the output's `_bad_records/`.
//! - `split_size` (default: chosen for the cluster, see below): the size of the byte range one
//!   task reads; each file is cut into `ceil(size / split_size)` splits (an empty file into none;
//!   a CSV file only where a record starts, so some splits may be longer). Either an integer
//!   number of bytes or a string with a unit: decimal `KB`, `MB`, `GB` or binary `KiB`, `MiB`,
//!   `GiB`, any case, a fraction allowed, e.g. `"64MiB"`, `"1MB"`, `"512 KiB"`, `"1000"`
//!   (`weft_io::parse_size`, the parser of every size Weft takes). At least 1 byte. The input may
//!   make at most [`MAX_TASKS_PER_STAGE`] splits.
//!
//!   Best left out: then [`automatic_split_size`] chooses it as Spark does for files,
//!   `min(`[`MAX_SPLIT_SIZE`]`, max(`[`SPLIT_OPEN_COST`]`, (bytes + files × SPLIT_OPEN_COST) /
//!   slots))` (128 MiB and 4 MiB), except that an input of more than a split per slot is cut
//!   into whole waves of equal splits (1 GB on 2 slots: 8 of 125.5 MB, not 7 of 128 MiB and a
//!   lone 61 MB task that leaves the other slot idle), where `slots` are the task slots of the
//!   cluster that runs the job: the registered workers' at submission on a cluster (1 if none is), the local workers'
//!   in `weft run`, and what `weft plan --slots` says (default: the cluster's with
//!   `--scheduler`, else one per CPU, as `weft run`). Every slot gets a task, no split is larger
//!   than 128 MiB, and none is cut smaller than 4 MiB (a small file is read whole). The size is
//!   chosen once, when the job is submitted, and kept with it ([`AutoSplit::Kept`]): a restarted
//!   scheduler plans the job with the same splits whatever workers it has. A small explicit size
//!   costs: each map task combines on its own, so a 1 GB word count in 8 MiB splits shuffled
//!   13 times the records and ran 2.2× slower than in 128 MiB ones. Several small files are not
//!   yet packed into one task (Spark does): each file is read by tasks of its own.
//!   [`Plan`] says which size it used and why, and [`SplitWarning`]s tell of splits that leave
//!   slots idle or make thousands of tiny tasks.
//!
//! **`[[step]]`** (one or more, in order): each step applies one function to every record (or, for
//! `reduce` and `group_reduce`, to every key with its values) of the previous step's output. A step
//! has exactly one of these keys, whose value names the function as `MODULE/FUNCTION`:
//! - `map`, `filter`, `flat_map`: narrow steps (each record on its own).
//! - `reduce`: combines the values of each key pairwise; it must be associative and commutative,
//!   because Weft also applies it map-side before the shuffle (a combiner).
//! - `group_reduce`: receives each key with all its values.
//!
//! `MODULE` is a registry reference — `NAME` (latest version), `NAME@VERSION`, `NAME@TAG` or
//! `blake3:HEX` — and `FUNCTION` a UDF the module exports (letters, digits, `_`), whose kind must
//! be the step's key. Steps naming the same `MODULE` run the same version, even if a new one is
//! registered while the job is resolved. A `reduce` or `group_reduce` step may also have
//! - `partitions` (integer from 1 to [`MAX_TASKS_PER_STAGE`], default: `output.partitions`): how
//!   many partitions (and so tasks) the shuffle before this step has. On the last such step it is
//!   also the number of output parts.
//!
//! **`[output]`** (required): where the result goes.
//! - `path` (string, required): the output directory, which receives one part file per partition.
//!   Relative to the job file's directory like `input.path`; `weft run --output` replaces it
//!   ([`JobSpec::with_output`]).
//! - `format` (string, default `"text"`): `"text"` (one line per record), `"jsonl"` (one JSON
//!   object per line) or `"csv"` (a `key,value` record per record, RFC 4180 quoting).
//! - `partitions` (integer from 1 to [`MAX_TASKS_PER_STAGE`], default 1): the number of partitions
//!   of every shuffle whose step does not set its own, and so of the output parts of a job whose
//!   last shuffle step does not set it. The default, 1, gives a single output file, which is what a
//!   small job wants; raise it to run the last reduce in parallel. A job without any `reduce` or
//!   `group_reduce` step writes one part per input split instead (none for an empty input), and
//!   setting `partitions` there is an error, since it could have no effect.
//!
//! **`[shuffle]`** (optional): how the job's shuffles are written.
//! - `compression` (string, default `"none"`): the codec of the shuffle files, which are
//!   Arrow IPC files: `"none"`, `"lz4"` (LZ4 frame) or `"zstd"`, applied by Arrow to each column
//!   buffer of each batch ([`ShuffleCompression`]). Readers learn the codec from the files, so the
//!   choice only trades CPU time for bytes on disk and on the network: `none` is the fastest when
//!   the shuffle stays on one machine, `lz4` (about 3/4 of the bytes) pays off across a network of
//!   about 1 Gb/s, `zstd` (about 1/2) where bytes are scarcer still; [`ShuffleCompression`] gives
//!   the measurements. Setting it in a job without a `reduce` or `group_reduce` step is an error,
//!   since it could have no effect.
//!
//! # Plans
//! A plan is a chain of stages cut at every `reduce`/`group_reduce` step. Stage 0 reads the input
//! splits (one task per split) and runs the narrow steps before the first wide step, fused into one
//! pass. Each wide step starts a stage that reads its parent's shuffle (one task per partition),
//! applies the wide step, then the narrow steps up to the next wide step. A stage that feeds a
//! `reduce` combines map-side with that reduce. The last stage writes the output. Stages name their
//! parents as a list, so a join can later give a stage two.
//!
//! # Layout
//! - `spec` — [`JobSpec`] and the parsing and checks of a job file;
//! - `resolve` — [`ResolvedJob`]: module references turned into module ids;
//! - `plan` — [`Plan`] and its stages and splits;
//! - `prepare` — [`prepare`]: the one path from a [`Submission`] (a job file and the command
//!   line's overrides) to a plan, used by `weft plan`, `weft run` and every submission;
//! - `error` — [`JobFileError`] (with its [`JobFileErrorKind`]), [`PlanError`] and source
//!   [`Location`]s.

mod error;
mod plan;
mod prepare;
mod resolve;
pub(crate) mod spec;

pub use error::{JobFileError, JobFileErrorKind, Location, PlanError};
pub use plan::{
    AutoSplit, MANY_TASKS, Plan, SplitSource, SplitWarning, Stage, StageInput, StageOutput,
    automatic_split_size, compute_splits,
};
pub use prepare::{PrepareError, Submission, check_output, prepare};
pub use resolve::{ResolvedJob, ResolvedStep};
pub use spec::{
    InputFormat, InputSpec, JobSpec, Limit, MAX_ATTEMPTS, MAX_SPLIT_SIZE, MAX_TASKS_PER_STAGE,
    OnError, OutputFormat, OutputSpec, RequestedLimit, SPLIT_OPEN_COST, ShuffleCompression,
    ShuffleSpec, StepSpec,
};
