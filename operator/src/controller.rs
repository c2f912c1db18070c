//! The kube-rs controller: observes a TrainingJob's Jobs and pods, asks [`plan`] what to do and
//! does it — status first (server-side apply), then creations, suspension, deletion, events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrotune_config::progress::Progress;
use ferrotune_crds::TrainingJob;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::metrics::Metrics;
use crate::names::{ATTEMPT_LABEL, CONTAINER, JOB_LABEL, MANAGER};
use crate::observe;
use crate::plan::{self, Observed, Plan};

/// Why a reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// The error kind as a metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
        }
    }
}

/// What every reconciliation shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes events.
    pub recorder: Recorder,
    /// Counts reconciliations.
    pub metrics: Arc<Metrics>,
}

impl Context {
    /// A context with an event reporter named after this operator instance.
    pub fn new(client: Client, metrics: Arc<Metrics>, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
        }
    }
}

/// Reads what the cluster shows of `tj`: its Jobs, the current attempt's pods and rank 0's
/// latest progress line.
pub async fn observe(tj: &TrainingJob, client: &Client) -> Result<Observed, Error> {
    let ns = crate::names::namespace(tj);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let selector = format!("{JOB_LABEL}={}", tj.name_any());
    let uid = tj.uid();
    let jobs: Vec<Job> = jobs
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|j| {
            // Jobs of an earlier TrainingJob of the same name belong to someone else.
            uid.is_none()
                || j.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect();
    let attempt = plan::current_attempt(tj, &jobs);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pods = pods
        .list(&ListParams::default().labels(&format!("{selector},{ATTEMPT_LABEL}={attempt}")))
        .await?
        .items;
    let failure = observe::first_failure(attempt, &pods);
    let rank0 = pods.iter().find(|p| {
        observe::rank_of(p) == Some(0)
            && matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Running" | "Succeeded")
            )
    });
    let progress = match rank0 {
        Some(pod) => {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let params = LogParams {
                container: Some(CONTAINER.into()),
                tail_lines: Some(200),
                ..LogParams::default()
            };
            match api.logs(&pod.name_any(), &params).await {
                Ok(log) => Progress::last_in_log(&log),
                Err(e) => {
                    tracing::debug!("no log of {}: {e}", pod.name_any());
                    None
                }
            }
        }
        None => None,
    };
    Ok(Observed {
        jobs,
        failure,
        progress,
    })
}

/// Carries out a plan for `tj`.
pub async fn apply(tj: &TrainingJob, plan: &Plan, ctx: &Context) -> Result<(), Error> {
    let ns = crate::names::namespace(tj);
    let name = tj.name_any();
    let client = &ctx.client;
    if tj.status.as_ref() != Some(&plan.status) {
        let api: Api<TrainingJob> = Api::namespaced(client.clone(), &ns);
        let patch = json!({
            "apiVersion": TrainingJob::api_version(&()),
            "kind": TrainingJob::kind(&()),
            "status": plan.status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    if let Some(attempt) = &plan.create {
        create(
            Api::<Service>::namespaced(client.clone(), &ns),
            &attempt.service,
        )
        .await?;
        create(
            Api::<ConfigMap>::namespaced(client.clone(), &ns),
            &attempt.config,
        )
        .await?;
        create(Api::<Job>::namespaced(client.clone(), &ns), &attempt.job).await?;
    }
    if let Some((job, suspend)) = &plan.suspend {
        let api: Api<Job> = Api::namespaced(client.clone(), &ns);
        let patch = json!({"spec": {"suspend": suspend}});
        api.patch(job, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    if plan.delete {
        let api: Api<TrainingJob> = Api::namespaced(client.clone(), &ns);
        api.delete(&name, &DeleteParams::background()).await?;
    }
    let reference = tj.object_ref(&());
    for note in &plan.notes {
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.into(),
            note: Some(note.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            // An event that cannot be written must not stop the job.
            tracing::warn!("cannot publish event {} for {name}: {e}", note.reason);
        }
    }
    Ok(())
}

/// Creates an object; one that exists already (an earlier reconcile, another replica) is fine.
async fn create<K>(api: Api<K>, object: &K) -> Result<(), Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// One reconciliation of a TrainingJob.
pub async fn reconcile(tj: Arc<TrainingJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = format!("{}/{}", crate::names::namespace(&tj), tj.name_any());
    if tj.meta().deletion_timestamp.is_some() {
        ctx.metrics.phase(&key, None);
        return Ok(Action::await_change());
    }
    let observed = observe(&tj, &ctx.client).await?;
    let plan = plan::plan(&tj, &observed, Timestamp::now());
    apply(&tj, &plan, &ctx).await?;
    ctx.metrics
        .phase(&key, if plan.delete { None } else { plan.status.phase });
    ctx.metrics.reconciled(started.elapsed().as_secs_f64());
    Ok(plan
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

/// Logs and counts a failed reconciliation, then retries it.
pub fn error_policy(tj: Arc<TrainingJob>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!("reconciling {}: {error}", tj.name_any());
    ctx.metrics.failed(error.metric_label());
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller over `namespaces` (all when empty) until the process ends.
pub async fn run(ctx: Arc<Context>, namespaces: &[String]) {
    let client = ctx.client.clone();
    let config = watcher::Config::default();
    let owned = watcher::Config::default().labels(JOB_LABEL);
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let controllers = scopes.into_iter().map(|ns| {
        let (tjs, jobs): (Api<TrainingJob>, Api<Job>) = match ns {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        Controller::new(tjs, config.clone())
            .owns(jobs, owned.clone())
            .shutdown_on_signal()
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!("reconcile: {e}");
                }
            })
    });
    futures::future::join_all(controllers).await;
}
