//! [`GrpcWorker`]: the [`WorkerConnection`] of a real worker, over `weft.v1.Worker`.

use weft_proto::v1 as pb;
use weft_proto::v1::worker_client::WorkerClient;
use weft_task::auth::AuthChannel;
use weft_task::link::Link;
use weft_task::{Launch, Remote, TaskId, TaskSpec};

use crate::cluster::{WorkerCallError, WorkerConnection};

/// How long the scheduler waits for a worker to accept a connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Replies from workers may carry this much (shuffle-block lists of large jobs); tonic's default
/// of 4 MiB is too small for them.
const MAX_REPLY_BYTES: usize = 64 << 20;

/// A worker's service, reached over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcWorker {
    client: WorkerClient<AuthChannel>,
}

impl GrpcWorker {
    /// Connects to the worker serving at `address` (`http://host:port`).
    /// Connects to the worker at `address` over `link` (TLS for `https://`, and the cluster
    /// secret).
    pub async fn connect(
        address: &str,
        link: &Link,
    ) -> Result<GrpcWorker, tonic::transport::Error> {
        let channel = link.connect(address, CONNECT_TIMEOUT).await?;
        Ok(GrpcWorker {
            client: WorkerClient::new(channel).max_decoding_message_size(MAX_REPLY_BYTES),
        })
    }
}

fn call_error(status: tonic::Status) -> WorkerCallError {
    WorkerCallError(Box::new(Remote(status)))
}

#[async_trait::async_trait]
impl WorkerConnection for GrpcWorker {
    async fn launch(&self, task: &TaskSpec) -> Result<Launch, WorkerCallError> {
        let reply = self
            .client
            .clone()
            .launch_task(pb::TaskDefinition::from(task))
            .await
            .map_err(call_error)?;
        Ok(reply.into_inner().into())
    }

    async fn kill(&self, task: &TaskId) -> Result<bool, WorkerCallError> {
        let reply = self
            .client
            .clone()
            .kill_task(pb::TaskAttemptId::from(task))
            .await
            .map_err(call_error)?;
        Ok(reply.into_inner().killed)
    }

    async fn release_job(&self, job: &str) -> Result<(), WorkerCallError> {
        self.client
            .clone()
            .release_job(pb::ReleaseJobRequest {
                job_id: job.to_owned(),
            })
            .await
            .map_err(call_error)?;
        Ok(())
    }

    async fn check_paths(
        &self,
        paths: &[String],
    ) -> Result<Vec<Result<(), String>>, WorkerCallError> {
        let reply = self
            .client
            .clone()
            .check_paths(pb::CheckPathsRequest {
                paths: paths.to_vec(),
            })
            .await
            .map_err(call_error)?;
        Ok(reply
            .into_inner()
            .errors
            .into_iter()
            .map(|e| if e.is_empty() { Ok(()) } else { Err(e) })
            .collect())
    }
}
