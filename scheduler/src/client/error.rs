//! [`ClientError`]: why a call to a remote scheduler failed, shared by every typed client.

use weft_task::{ConvertError, Remote};

/// Why a call to the scheduler failed. The `Display` of each variant is meant for users: it names the
/// scheduler's URL when it could not be reached and otherwise relays the scheduler's own message.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The scheduler could not be reached (bad URL, nobody listening, connection lost).
    #[error("cannot reach the scheduler at {url}")]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The scheduler answered with an error; `message` is its own words.
    #[error("scheduler: {message}")]
    Status { code: tonic::Code, message: String },
    /// The scheduler's reply is malformed (a missing or invalid field): a version mismatch or a bug.
    #[error("invalid reply from the scheduler")]
    Invalid(#[from] ConvertError),
    /// Downloaded bytes do not hash to the id they were asked for; they are not used.
    #[error("module {id} from the scheduler does not match its id (the bytes hash to {actual})")]
    HashMismatch { id: String, actual: String },
}

impl ClientError {
    /// The gRPC status code, for the errors the scheduler sent.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the scheduler refused what the request carried (`INVALID_ARGUMENT`: a module its
    /// validator refused, a malformed name or reference), as opposed to failing to serve it.
    pub fn is_invalid_request(&self) -> bool {
        self.code() == Some(tonic::Code::InvalidArgument)
    }

    /// Turns a status into an error; `url` names the scheduler when the status says it was not
    /// reachable (tonic reports a failed connection as `Unavailable`).
    pub fn from_status(url: &str, status: tonic::Status) -> ClientError {
        match status.code() {
            tonic::Code::Unavailable => ClientError::Connect {
                url: url.to_owned(),
                source: Box::new(Remote(status)),
            },
            code => ClientError::Status {
                code,
                message: status.message().to_owned(),
            },
        }
    }
}
