//! [`JobsClient`]: jobs and the cluster's workers on a remote scheduler, as domain types.

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
    pub async fn watch(
        &mut self,
        job: &str,
        mut each: impl FnMut(&JobStatus),
    ) -> Result<JobStatus, ClientError> {
        let mut stream = self
            .jobs
            .watch(self.job_ref(job))
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        let mut last = None;
        while let Some(item) = stream.next().await {
            let status = JobStatus::try_from(item.map_err(|s| self.error(s))?)
                .map_err(ClientError::Invalid)?;
            each(&status);
            last = Some(status);
        }
        match last {
            Some(status) if status.state.is_final() => Ok(status),
            _ => Err(ClientError::Invalid(bad(
                "Watch",
                format!("the scheduler stopped sending the status of job {job} before it ended"),
            ))),
        }
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
