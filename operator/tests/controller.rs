//! The controller against kube's real client over a `tower-test` mock API server: each scenario
//! lists the HTTP exchanges reconcile must make, in order, and checks what it sent.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{failed_pod, job, training_job};
use ferrotune_crds::{Phase, TrainingJob};
use ferrotune_operator::controller::{Context, reconcile};
use ferrotune_operator::metrics::Metrics;
use http::{Request, Response};
use kube::client::Body;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

enum Reply {
    /// The request's own body (a create or patch that the server accepts).
    Echo,
    /// The stored TrainingJob with the status the request applied.
    Status,
    Json(u16, Value),
    Text(String),
}

struct Exchange {
    method: &'static str,
    path: String,
    reply: Reply,
}

fn ex(method: &'static str, path: &str, reply: Reply) -> Exchange {
    Exchange {
        method,
        path: path.into(),
        reply,
    }
}

fn list(kind: &str, items: Vec<Value>) -> Reply {
    Reply::Json(
        200,
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "7"}, "items": items}),
    )
}

fn exists() -> Reply {
    Reply::Json(
        409,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "already exists", "reason": "AlreadyExists", "code": 409}),
    )
}

const JOBS: &str =
    "/apis/batch/v1/namespaces/ml/jobs?&labelSelector=ferrotune.dev%2Ftrainingjob%3Dsum";
const STATUS: &str = "/apis/ferrotune.dev/v1alpha1/namespaces/ml/trainingjobs/sum/status?&force=true&fieldManager=ferrotune-operator";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ml/events";

fn pods(attempt: u32) -> String {
    format!(
        "/api/v1/namespaces/ml/pods?&labelSelector=ferrotune.dev%2Ftrainingjob%3Dsum%2Cferrotune.dev%2Fattempt%3D{attempt}"
    )
}

/// Runs one reconcile against the scripted exchanges; returns what was sent (method, uri,
/// body) and the metrics afterwards.
async fn scenario(
    tj: TrainingJob,
    script: Vec<Exchange>,
) -> (Vec<(String, String, Value)>, String) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for (i, step) in script.into_iter().enumerate() {
            let (request, reply) = handle
                .next_request()
                .await
                .expect("reconcile stopped calling");
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            assert_eq!(
                (method.as_str(), uri.as_str()),
                (step.method, step.path.as_str()),
                "exchange {i}"
            );
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (status, out) = match step.reply {
                Reply::Echo => (200, serde_json::to_vec(&body).unwrap()),
                Reply::Status => {
                    let mut stored = to_json(&training_job());
                    stored["status"] = body["status"].clone();
                    (200, serde_json::to_vec(&stored).unwrap())
                }
                Reply::Json(status, v) => (status, serde_json::to_vec(&v).unwrap()),
                Reply::Text(t) => (200, t.into_bytes()),
            };
            reply.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(out))
                    .unwrap(),
            );
            seen.push((method, uri, body));
        }
        seen
    });
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(
        Client::new(service, "default"),
        metrics.clone(),
        None,
    ));
    let result = tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(tj), ctx)).await;
    let seen = match result {
        Ok(done) => {
            done.expect("reconcile failed");
            server.await.expect("a scripted exchange did not match")
        }
        Err(_) => {
            // Reconcile waits on a request the script does not have (or the script panicked).
            server.abort();
            panic!("reconcile made a request beyond the script, or too few");
        }
    };
    (seen, metrics.render())
}

fn with_status(mut tj: TrainingJob, phase: Phase, attempt: u32) -> TrainingJob {
    let status = tj.status.get_or_insert_default();
    status.phase = Some(phase);
    status.attempt = attempt;
    status.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    tj
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

#[tokio::test]
async fn create_writes_status_then_service_config_and_job_then_an_event() {
    let (seen, metrics) = scenario(
        training_job(),
        vec![
            ex("GET", JOBS, list("JobList", vec![])),
            ex("GET", &pods(1), list("PodList", vec![])),
            ex("PATCH", STATUS, Reply::Status),
            ex("POST", "/api/v1/namespaces/ml/services?", Reply::Echo),
            ex("POST", "/api/v1/namespaces/ml/configmaps?", Reply::Echo),
            ex("POST", "/apis/batch/v1/namespaces/ml/jobs?", Reply::Echo),
            ex("POST", &format!("{EVENTS}?"), Reply::Echo),
        ],
    )
    .await;
    let status = &seen[2].2["status"];
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["attempt"], 1);
    assert_eq!(seen[3].2["spec"]["clusterIP"], "None");
    assert!(
        seen[4].2["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .contains("dir: /runs/run")
    );
    let job = &seen[5].2;
    assert_eq!(job["metadata"]["name"], "sum-1");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["uid"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(seen[6].2["reason"], "Started");
    assert!(
        metrics.contains("ferrotune_operator_trainingjobs{phase=\"Pending\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferrotune_operator_reconciles_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_worker_failure_starts_attempt_two_with_the_failure_in_status() {
    let tj = with_status(training_job(), Phase::Running, 1);
    let failed = job(1, 0, Some(("Failed", "PodFailurePolicy")));
    let pod = failed_pod(1, 1, 1, "Error", "error: rank 1: out of disk space");
    let (seen, _) = scenario(
        tj,
        vec![
            ex("GET", JOBS, list("JobList", vec![to_json(&failed)])),
            ex("GET", &pods(1), list("PodList", vec![to_json(&pod)])),
            ex("PATCH", STATUS, Reply::Status),
            ex("POST", "/api/v1/namespaces/ml/services?", exists()),
            ex("POST", "/api/v1/namespaces/ml/configmaps?", Reply::Echo),
            ex("POST", "/apis/batch/v1/namespaces/ml/jobs?", Reply::Echo),
            ex("POST", &format!("{EVENTS}?"), Reply::Echo),
            ex("POST", &format!("{EVENTS}?"), Reply::Echo),
        ],
    )
    .await;
    let status = &seen[2].2["status"];
    assert_eq!(status["phase"], "Restarting");
    assert_eq!(
        (status["attempt"].as_u64(), status["restartCount"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(status["lastFailure"]["nodeRank"], 1);
    assert_eq!(status["lastFailure"]["exitCode"], 1);
    assert_eq!(
        status["lastFailure"]["message"],
        "error: rank 1: out of disk space"
    );
    assert_eq!(seen[5].2["metadata"]["name"], "sum-2");
    assert_eq!(seen[6].2["reason"], "AttemptFailed");
    assert_eq!(seen[6].2["type"], "Warning");
    assert_eq!(seen[7].2["reason"], "Restarting");
}

#[tokio::test]
async fn an_exhausted_budget_fails_the_job_and_creates_nothing() {
    let tj = with_status(training_job(), Phase::Restarting, 3);
    let failed = |a| to_json(&job(a, 0, Some(("Failed", "PodFailurePolicy"))));
    let (seen, metrics) = scenario(
        tj,
        vec![
            ex(
                "GET",
                JOBS,
                list("JobList", vec![failed(1), failed(2), failed(3)]),
            ),
            ex("GET", &pods(3), list("PodList", vec![])),
            ex("PATCH", STATUS, Reply::Status),
            ex("POST", &format!("{EVENTS}?"), Reply::Echo),
            ex("POST", &format!("{EVENTS}?"), Reply::Echo),
        ],
    )
    .await;
    let status = &seen[2].2["status"];
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["restartCount"], 3);
    assert_eq!(seen[4].2["reason"], "BackoffLimitExceeded");
    assert!(
        metrics.contains("ferrotune_operator_trainingjobs{phase=\"Failed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn after_an_operator_restart_a_running_attempt_is_only_observed() {
    // The status was written before attempt 2 existed; the new operator finds attempt 2 running,
    // reads rank 0's progress from its log and creates nothing.
    let tj = with_status(training_job(), Phase::Restarting, 1);
    let failed = to_json(&job(1, 0, Some(("Failed", "PodFailurePolicy"))));
    let running = to_json(&job(2, 2, None));
    let mut rank0 = to_json(&failed_pod(2, 0, 0, "", ""));
    rank0["status"] = json!({"phase": "Running"});
    rank0["metadata"]["name"] = json!("sum-2-0-abc");
    let log = "loading\nFERROTUNE_PROGRESS {\"phase\":\"Training\",\"step\":12,\"totalSteps\":50,\"loss\":2.5}\n";
    let (seen, _) = scenario(
        tj,
        vec![
            ex("GET", JOBS, list("JobList", vec![failed, running])),
            ex("GET", &pods(2), list("PodList", vec![rank0])),
            ex(
                "GET",
                "/api/v1/namespaces/ml/pods/sum-2-0-abc/log?&container=trainer&tailLines=200",
                Reply::Text(log.into()),
            ),
            ex("PATCH", STATUS, Reply::Status),
            ex("POST", &format!("{EVENTS}?"), Reply::Echo),
        ],
    )
    .await;
    let status = &seen[3].2["status"];
    assert_eq!(status["phase"], "Running");
    assert_eq!(
        (status["attempt"].as_u64(), status["restartCount"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(status["progress"]["step"], 12);
    assert_eq!(status["progress"]["loss"], 2.5);
    assert_eq!(seen[4].2["reason"], "Running");
}

#[tokio::test]
async fn suspending_patches_the_running_job() {
    let mut tj = with_status(training_job(), Phase::Running, 1);
    tj.spec.run_policy.suspend = true;
    let (seen, _) = scenario(
        tj,
        vec![
            ex(
                "GET",
                JOBS,
                list("JobList", vec![to_json(&job(1, 2, None))]),
            ),
            ex("GET", &pods(1), list("PodList", vec![])),
            ex("PATCH", STATUS, Reply::Status),
            ex(
                "PATCH",
                "/apis/batch/v1/namespaces/ml/jobs/sum-1?",
                Reply::Json(200, to_json(&job(1, 0, None))),
            ),
            ex("POST", &format!("{EVENTS}?"), Reply::Echo),
        ],
    )
    .await;
    assert_eq!(seen[2].2["status"]["phase"], "Suspended");
    assert_eq!(seen[3].2, json!({"spec": {"suspend": true}}));
}

#[tokio::test]
async fn a_finished_job_past_its_ttl_is_deleted() {
    let mut tj = with_status(training_job(), Phase::Succeeded, 1);
    tj.spec.run_policy.ttl_seconds_after_finished = Some(0);
    let done = k8s_openapi::jiff::Timestamp::now() - Duration::from_secs(5);
    let status = tj.status.as_mut().unwrap();
    status.completion_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(done));
    status.observed_generation = Some(1);
    let name = tj.name_any();
    let (seen, _) = scenario(
        tj,
        vec![
            ex("GET", JOBS, list("JobList", vec![])),
            ex("GET", &pods(1), list("PodList", vec![])),
            ex(
                "DELETE",
                &format!("/apis/ferrotune.dev/v1alpha1/namespaces/ml/trainingjobs/{name}?"),
                Reply::Json(
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ),
            ),
            ex("POST", &format!("{EVENTS}?"), Reply::Echo),
        ],
    )
    .await;
    assert_eq!(seen[2].2["propagationPolicy"], "Background");
}
