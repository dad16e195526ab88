//! [`JobsClient`]: jobs and the cluster's workers on a remote scheduler, as domain types.

use std::time::Duration;

use tokio_stream::StreamExt;
use weft_proto::v1 as pb;
use weft_proto::v1::cluster_client::ClusterClient;
use weft_proto::v1::jobs_client::JobsClient as RpcClient;
use weft_task::auth::AuthChannel;
use weft_task::convert::bad;
use weft_task::link::Link;

use super::ClientError;
use crate::Tenant;
use crate::cluster::WorkerInfo;
use crate::job::Submission;
use crate::jobs::{JobStatus, TaskLog, TaskRef, TaskReport, TenantUsage};
use crate::service::jobs::logs_from_chunks;

/// How long [`JobsClient::watch`] keeps calling a scheduler it lost (restarting, say).
pub const WATCH_PATIENCE: Duration = Duration::from_secs(120);
const WATCH_RETRY_START: Duration = Duration::from_millis(100);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(2);

/// Whether `e` says the connection to the scheduler broke (it stopped or restarted), rather than
/// that the scheduler refused the call.
fn connection_lost(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } => true,
        ClientError::Status { code, .. } => matches!(
            code,
            tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Aborted
        ),
        _ => false,
    }
}

/// Jobs and workers of the scheduler at one URL.
#[derive(Debug, Clone)]
pub struct JobsClient {
    jobs: RpcClient<AuthChannel>,
    cluster: ClusterClient<AuthChannel>,
    url: String,
    tenant: Tenant,
}

impl JobsClient {
    /// Connects to the scheduler at `url`, acting for `tenant`.
    pub async fn connect(url: &str, tenant: Tenant) -> Result<JobsClient, ClientError> {
        JobsClient::connect_with(url, tenant, &Link::default()).await
    }

    /// [`JobsClient::connect`] over `link`: TLS for an `https://` URL, and an API token presented
    /// with every request (a scheduler with tenants takes the tenant from it).
    pub async fn connect_with(
        url: &str,
        tenant: Tenant,
        link: &Link,
    ) -> Result<JobsClient, ClientError> {
        let channel = super::channel(url, link).await?;
        Ok(JobsClient {
            jobs: RpcClient::new(channel.clone()),
            cluster: ClusterClient::new(channel),
            url: url.to_owned(),
            tenant,
        })
    }

    fn error(&self, status: tonic::Status) -> ClientError {
        ClientError::from_status(&self.url, status)
    }

    fn job_ref(&self, job: &str) -> pb::JobRef {
        pb::JobRef {
            tenant: self.tenant.to_string(),
            job_id: job.to_owned(),
        }
    }

    /// Submits a job; returns its id once the scheduler accepted it (checked, resolved, planned).
    pub async fn submit(&mut self, job: Submission) -> Result<String, ClientError> {
        let request = pb::SubmitJobRequest {
            tenant: self.tenant.to_string(),
            job_toml: job.job_toml,
            input: job.input,
            output: job.output,
            overwrite: job.overwrite,
            job_file: job.job_file,
        };
        let reply = self.jobs.submit(request).await.map_err(|s| self.error(s))?;
        Ok(reply.into_inner().job_id)
    }

    /// What each tenant's jobs used: this client's tenant, or every tenant for an operator.
    pub async fn usage(&mut self) -> Result<Vec<TenantUsage>, ClientError> {
        let reply = self
            .jobs
            .usage(pb::UsageRequest {
                tenant: self.tenant.to_string(),
            })
            .await
            .map_err(|s| self.error(s))?;
        Ok(reply
            .into_inner()
            .tenants
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn status(&mut self, job: &str) -> Result<JobStatus, ClientError> {
        let reply = self
            .jobs
            .status(self.job_ref(job))
            .await
            .map_err(|s| self.error(s))?;
        JobStatus::try_from(reply.into_inner()).map_err(ClientError::Invalid)
    }

    /// Every recorded attempt of the job's tasks, in stage, partition and attempt order.
    pub async fn tasks(&mut self, job: &str) -> Result<Vec<TaskReport>, ClientError> {
        let mut stream = self
            .jobs
            .tasks(self.job_ref(job))
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        let mut tasks = Vec::new();
        while let Some(item) = stream.next().await {
            let task = item.map_err(|s| self.error(s))?;
            tasks.push(TaskReport::try_from(task).map_err(ClientError::Invalid)?);
        }
        Ok(tasks)
    }

    /// Calls `each` with every status snapshot until the job is over; returns the final status.
    ///
    /// A scheduler lost on the way (it restarted: it picks its jobs up) is called again, with
    /// back-off, until it answers or it has been out of reach for [`WATCH_PATIENCE`]; the watch
    /// then goes on from the job's status at that moment.
    pub async fn watch(
        &mut self,
        job: &str,
        mut each: impl FnMut(&JobStatus),
    ) -> Result<JobStatus, ClientError> {
        let mut outage: Option<std::time::Instant> = None;
        let mut pause = WATCH_RETRY_START;
        loop {
            let mut heard = false;
            let lost = match self.watch_once(job, &mut each, &mut heard).await {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => ClientError::Invalid(bad(
                    "Watch",
                    format!(
                        "the scheduler stopped sending the status of job {job} before it ended"
                    ),
                )),
                Err(e) if connection_lost(&e) => e,
                Err(e) => return Err(e),
            };
            if heard {
                outage = None;
                pause = WATCH_RETRY_START;
            }
            let since = *outage.get_or_insert_with(|| {
                tracing::warn!(scheduler = %self.url, problem = %weft_task::error_chain(&lost),
                    "lost the scheduler while watching job {job}; calling it again");
                std::time::Instant::now()
            });
            if since.elapsed() + pause > WATCH_PATIENCE {
                return Err(lost);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(WATCH_RETRY_MAX);
        }
    }

    /// One watch call: `Some(status)` once the job is over, `None` if the stream ended before.
    /// `heard` is set once the scheduler sent something.
    async fn watch_once(
        &mut self,
        job: &str,
        each: &mut impl FnMut(&JobStatus),
        heard: &mut bool,
    ) -> Result<Option<JobStatus>, ClientError> {
        let mut stream = self
            .jobs
            .watch(self.job_ref(job))
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        while let Some(item) = stream.next().await {
            let status = JobStatus::try_from(item.map_err(|s| self.error(s))?)
                .map_err(ClientError::Invalid)?;
            *heard = true;
            each(&status);
            if status.state.is_final() {
                return Ok(Some(status));
            }
        }
        Ok(None)
    }

    pub async fn list(&mut self) -> Result<Vec<JobStatus>, ClientError> {
        let reply = self
            .jobs
            .list(pb::ListJobsRequest {
                tenant: self.tenant.to_string(),
            })
            .await
            .map_err(|s| self.error(s))?;
        reply
            .into_inner()
            .jobs
            .into_iter()
            .map(|j| JobStatus::try_from(j).map_err(ClientError::Invalid))
            .collect()
    }

    /// Cancels a job and returns its final status.
    pub async fn cancel(&mut self, job: &str) -> Result<JobStatus, ClientError> {
        let reply = self
            .jobs
            .cancel(self.job_ref(job))
            .await
            .map_err(|s| self.error(s))?;
        JobStatus::try_from(reply.into_inner()).map_err(ClientError::Invalid)
    }

    /// The captured guest output of the job's tasks (of one task with `task`).
    pub async fn logs(
        &mut self,
        job: &str,
        task: Option<TaskRef>,
    ) -> Result<Vec<TaskLog>, ClientError> {
        let request = pb::LogsRequest {
            job: Some(self.job_ref(job)),
            task: task.map(|t| pb::TaskAttemptId {
                job_id: job.to_owned(),
                stage_id: t.stage,
                partition: t.partition,
                attempt: 0,
            }),
        };
        let mut stream = self
            .jobs
            .logs(request)
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next().await {
            chunks.push(chunk.map_err(|s| self.error(s))?);
        }
        logs_from_chunks(chunks).map_err(ClientError::Invalid)
    }

    /// The workers registered with the scheduler.
    pub async fn workers(&mut self) -> Result<Vec<WorkerInfo>, ClientError> {
        let reply = self
            .cluster
            .workers(pb::WorkersRequest {})
            .await
            .map_err(|s| self.error(s))?;
        Ok(reply
            .into_inner()
            .workers
            .into_iter()
            .map(WorkerInfo::from)
            .collect())
    }
}
