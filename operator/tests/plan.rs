//! The reconcile decision, case by case: what a TrainingJob becomes for each thing the cluster
//! can show.

mod common;

use common::{failed_pod, job, training_job};
use ferrotune_crds::Phase;
use ferrotune_operator::observe;
use ferrotune_operator::plan::{Observed, Plan, plan};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

fn now() -> Timestamp {
    "2026-12-06T05:00:00Z".parse().unwrap()
}

/// The plan's status condition of `type_`.
fn condition<'a>(p: &'a Plan, type_: &str) -> &'a Condition {
    p.status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", p.status.conditions))
}

fn observed(jobs: Vec<k8s_openapi::api::batch::v1::Job>) -> Observed {
    Observed {
        jobs,
        ..Observed::default()
    }
}

#[test]
fn a_new_job_creates_its_first_attempt() {
    let tj = training_job();
    let p = plan(&tj, &observed(vec![]), now());
    let created = p.create.expect("first attempt");
    assert_eq!(created.job.metadata.name.as_deref(), Some("sum-1"));
    assert_eq!(created.service.metadata.name.as_deref(), Some("sum"));
    assert_eq!(created.config.metadata.name.as_deref(), Some("sum-1"));
    assert_eq!(p.status.phase, Some(Phase::Pending));
    assert_eq!(p.status.attempt, 1);
    assert_eq!(p.status.restart_count, 0);
    assert_eq!(p.status.observed_generation, Some(1));
    assert_eq!(p.status.start_time, Some(Time(now())));
    assert_eq!(p.notes[0].reason, "Started");
    assert_eq!(p.requeue, Some(Duration::from_secs(10)));
}

#[test]
fn all_pods_active_is_running_and_says_so_once() {
    let mut tj = training_job();
    let p = plan(&tj, &observed(vec![job(1, 2, None)]), now());
    assert!(p.create.is_none());
    assert_eq!(p.status.phase, Some(Phase::Running));
    assert_eq!((p.status.workers_active, p.status.workers_ready), (2, 2));
    assert_eq!(
        p.notes.iter().map(|n| n.reason).collect::<Vec<_>>(),
        ["Running"]
    );
    let running = condition(&p, "Running");
    assert_eq!(running.status, "True");
    tj.status = Some(p.status.clone());
    let again = plan(&tj, &observed(vec![job(1, 2, None)]), now());
    assert!(again.notes.is_empty(), "{:?}", again.notes);
    assert_eq!(again.status, p.status, "a second look changes nothing");
}

#[test]
fn a_failed_worker_starts_a_new_attempt_naming_rank_exit_code_and_reason() {
    let mut tj = training_job();
    tj.status = Some(plan(&tj, &observed(vec![job(1, 2, None)]), now()).status);
    let pods = [failed_pod(1, 1, 137, "OOMKilled", "loading model\nkilled")];
    let seen = Observed {
        jobs: vec![job(1, 0, Some(("Failed", "PodFailurePolicy")))],
        failure: observe::first_failure(1, &pods),
        progress: None,
    };
    let p = plan(&tj, &seen, now());
    assert_eq!(p.status.phase, Some(Phase::Restarting));
    assert_eq!(p.status.attempt, 2);
    assert_eq!(p.status.restart_count, 1);
    let failure = p.status.last_failure.clone().unwrap();
    assert_eq!(failure.node_rank, Some(1));
    assert_eq!(failure.exit_code, Some(137));
    assert_eq!(failure.reason.as_deref(), Some("OOMKilled"));
    let created = p.create.expect("second attempt");
    assert_eq!(created.job.metadata.name.as_deref(), Some("sum-2"));
    let failed = p
        .notes
        .iter()
        .find(|n| n.reason == "AttemptFailed")
        .unwrap();
    assert!(failed.warning);
    assert!(
        failed
            .message
            .contains("node rank 1 exited with code 137 (OOMKilled): killed"),
        "{}",
        failed.message
    );
}

#[test]
fn the_restart_budget_survives_a_lost_status_and_ends_in_failed() {
    // backoffLimit 2: attempts 1 and 2 failed, attempt 3 fails now. The status was lost (an
    // operator restart before it was written): the count comes from the Jobs themselves.
    let tj = training_job();
    let failed = |a| job(a, 0, Some(("Failed", "PodFailurePolicy")));
    let p = plan(&tj, &observed(vec![failed(1), failed(2), failed(3)]), now());
    assert_eq!(p.status.restart_count, 3);
    assert_eq!(p.status.phase, Some(Phase::Failed));
    assert!(p.create.is_none(), "no attempt beyond the budget");
    let cond = condition(&p, "Failed");
    assert_eq!(cond.reason, "BackoffLimitExceeded");
    assert!(
        cond.message.contains("3 failed attempt(s), backoffLimit 2"),
        "{}",
        cond.message
    );
    assert_eq!(p.status.completion_time, Some(Time(now())));
}

#[test]
fn an_operator_restart_mid_attempt_creates_nothing_twice() {
    // Attempt 2 was created but the status still says attempt 1.
    let mut tj = training_job();
    let mut status = plan(&tj, &observed(vec![]), now()).status;
    status.attempt = 1;
    tj.status = Some(status);
    let jobs = vec![
        job(1, 0, Some(("Failed", "PodFailurePolicy"))),
        job(2, 2, None),
    ];
    let p = plan(&tj, &observed(jobs), now());
    assert!(p.create.is_none());
    assert_eq!(p.status.attempt, 2);
    assert_eq!(p.status.restart_count, 1);
    assert_eq!(p.status.phase, Some(Phase::Running));
}

#[test]
fn success_finishes_and_the_ttl_deletes_later() {
    let mut tj = training_job();
    tj.spec.run_policy.ttl_seconds_after_finished = Some(600);
    let p = plan(
        &tj,
        &observed(vec![job(1, 0, Some(("Complete", "CompletionsReached")))]),
        now(),
    );
    assert_eq!(p.status.phase, Some(Phase::Succeeded));
    assert_eq!(p.requeue, Some(Duration::from_secs(600)));
    assert!(!p.delete);
    tj.status = Some(p.status);
    let later = plan(&tj, &observed(vec![]), now() + Duration::from_secs(599));
    assert!(!later.delete);
    assert_eq!(later.requeue, Some(Duration::from_secs(1)));
    let expired = plan(&tj, &observed(vec![]), now() + Duration::from_secs(600));
    assert!(expired.delete);
    assert_eq!(expired.notes[0].reason, "Deleted");
}

#[test]
fn suspend_and_resume_patch_the_job_and_the_phase() {
    let mut tj = training_job();
    tj.status = Some(plan(&tj, &observed(vec![job(1, 2, None)]), now()).status);
    tj.spec.run_policy.suspend = true;
    let p = plan(&tj, &observed(vec![job(1, 2, None)]), now());
    assert_eq!(p.suspend, Some(("sum-1".into(), true)));
    assert_eq!(p.status.phase, Some(Phase::Suspended));
    assert_eq!(p.notes[0].reason, "Suspended");

    tj.status = Some(p.status);
    tj.spec.run_policy.suspend = false;
    let mut suspended = job(1, 0, None);
    suspended.spec.as_mut().unwrap().suspend = Some(true);
    let p = plan(&tj, &observed(vec![suspended]), now());
    assert_eq!(p.suspend, Some(("sum-1".into(), false)));
    assert_eq!(p.notes[0].reason, "Resumed");
    let cond = condition(&p, "Suspended");
    assert_eq!(cond.status, "False");
}

#[test]
fn kueue_admits_the_job_not_the_operator() {
    let mut tj = training_job();
    tj.spec.scheduling.queue_name = Some("gpus".into());
    let p = plan(&tj, &observed(vec![]), now());
    let job = p.create.unwrap().job;
    assert_eq!(job.spec.as_ref().unwrap().suspend, Some(true));
    assert_eq!(
        job.metadata.labels.unwrap()["kueue.x-k8s.io/queue-name"],
        "gpus"
    );
    let mut waiting = common::job(1, 0, None);
    waiting.spec.as_mut().unwrap().suspend = Some(true);
    let p = plan(&tj, &observed(vec![waiting]), now());
    assert_eq!(p.suspend, None, "unsuspending is Kueue's decision");
    assert_eq!(p.status.phase, Some(Phase::Suspended));
}

#[test]
fn the_deadline_fails_the_job_and_bounds_each_attempt() {
    let mut tj = training_job();
    tj.spec.run_policy.active_deadline_seconds = Some(3600);
    let first = plan(&tj, &observed(vec![]), now());
    let job_spec = first.create.unwrap().job.spec.unwrap();
    assert_eq!(job_spec.active_deadline_seconds, Some(3600));
    tj.status = Some(first.status);
    let p = plan(
        &tj,
        &observed(vec![job(1, 2, None)]),
        now() + Duration::from_secs(3600),
    );
    assert_eq!(p.status.phase, Some(Phase::Failed));
    assert_eq!(p.notes[0].reason, "DeadlineExceeded");
}

#[test]
fn an_invalid_spec_fails_with_every_problem_and_creates_nothing() {
    let mut tj = training_job();
    tj.spec.training.lora.r = 0;
    tj.spec.parallelism.nodes = 0;
    let p = plan(&tj, &observed(vec![]), now());
    assert!(p.create.is_none());
    assert_eq!(p.status.phase, Some(Phase::Failed));
    let cond = condition(&p, "Failed");
    assert_eq!(cond.reason, "InvalidSpec");
    assert!(
        cond.message.contains("spec.training.lora.r"),
        "{}",
        cond.message
    );
    assert!(
        cond.message
            .contains("spec.parallelism.nodes: must be in 1..=1024, got 0")
    );
}

#[test]
fn progress_from_rank_zero_reaches_the_status() {
    let tj = training_job();
    let log = "step 10\nFERROTUNE_PROGRESS {\"phase\":\"Training\",\"step\":40,\"totalSteps\":100,\"loss\":1.25,\"tokensPerSecond\":900.0,\"etaSeconds\":60,\"lastCheckpointStep\":25}\nmore";
    let progress = ferrotune_config::progress::Progress::last_in_log(log).unwrap();
    let seen = Observed {
        jobs: vec![job(1, 2, None)],
        progress: Some(progress),
        failure: None,
    };
    let p = plan(&tj, &seen, now());
    let got = p.status.progress.unwrap();
    assert_eq!(
        (got.step, got.total_steps, got.last_checkpoint_step),
        (40, 100, Some(25))
    );
    assert_eq!(got.loss, Some(1.25));
}
