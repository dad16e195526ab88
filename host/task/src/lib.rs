//! The contract between Weft's scheduler and its workers: what a task is, where its input and
//! output live, how it ended, and how workers join and stay in the cluster — in domain types, with
//! their protobuf conversions (the one place either side turns messages into values).
//!
//! Both sides depend on this crate and neither on the other, as Ballista keeps its executor↔
//! scheduler contract in `ballista-core`: a field added to the contract changes this crate, the
//! gRPC edges, and the code that uses the field, nothing else.
//!
//! # Brief overview
//! - [`TaskSpec`] — one task attempt ([`TaskId`]): its steps ([`StepRef`]), its input (an input
//!   split, or shuffle blocks at [`BlockLocation`]s), its output (shuffle files with a
//!   [`ShuffleCompression`], or a part file of the job's output), its [`TaskLimits`] (each
//!   a [`Limit`]).
//! - [`TaskOutcome`] — how an attempt ended: a [`TaskResult`] or a [`TaskFailure`], with its
//!   guests' [`GuestOutput`].
//! - [`WorkerRegistration`], [`Heartbeat`], [`HeartbeatReply`], [`Launch`] — membership.
//! - [`convert`] — `From`/`TryFrom` between all of them and `weft_proto::v1`; a malformed message
//!   is a [`ConvertError`] naming the field.
//! - [`error_chain`] — an error and its causes as one line, for messages that cross the wire;
//!   [`Remote`] — a gRPC status received, as an error in such a chain.
//!
//! The input and output formats are weft-io's ([`InputFormat`], [`OutputFormat`]): one vocabulary
//! from the job file to the reader.

pub mod auth;
pub mod convert;
mod limits;
pub mod link;
mod membership;
mod task;

pub use convert::ConvertError;
pub use limits::{DEFAULT_STACK_BYTES, Limit, LimitError, MAX_STACK_BYTES, TaskLimits};
pub use membership::{
    Heartbeat, HeartbeatReply, Launch, Registered, TaskProgress, WorkerRegistration,
};
pub use task::{
    BlockLocation, GuestOutput, MAX_TASK_OUTPUT, ShuffleCompression, StepRef, TaskFailure, TaskId,
    TaskInput, TaskOutcome, TaskOutput, TaskResult, TaskSpec, TaskUsage, UnknownShuffleCompression,
};
pub use weft_io::{InputFormat, InputSplit, OutputFormat};

/// A gRPC status from the other side, as an error: its text is the peer's own message (a status's
/// `Display` is for logs: `code: 'Not found', message: "…"`), its source the cause tonic found on
/// this side (a transport error), if any.
#[derive(Debug)]
pub struct Remote(pub tonic::Status);

impl Remote {
    pub fn code(&self) -> tonic::Code {
        self.0.code()
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.message() {
            "" => write!(f, "{}", self.0.code()),
            message => f.write_str(message),
        }
    }
}

impl std::error::Error for Remote {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

impl From<tonic::Status> for Remote {
    fn from(status: tonic::Status) -> Remote {
        Remote(status)
    }
}

/// `error: cause: cause…` — an error with its chain of sources, for a message that leaves the
/// process (a task failure report, a gRPC status), where the receiver only gets text. A source
/// whose text the error's own already ends with is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot fetch module m")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("connecting to http://s: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn chains_name_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            error_chain(&Outer(Middle(io))),
            "cannot fetch module m: connecting to http://s: refused"
        );
    }
}
