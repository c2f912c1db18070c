//! The reconcile decision as a pure function: from a TrainingJob and what the cluster shows of
//! it, the status to write, the objects to create, the Job to (un)suspend, the events to emit
//! and when to look again.

use std::time::Duration;

use ferrotune_config::progress::Progress;
use ferrotune_crds::{Failure, Phase, TrainingJob, TrainingJobStatus};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::desired::{self, Attempt, AttemptParams};
use crate::names::{self, MAX_NAME_LEN};
use crate::observe::{self, Finished};

/// What the cluster shows of one TrainingJob.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Its batch Jobs, one per attempt so far.
    pub jobs: Vec<Job>,
    /// How the current attempt's first failed pod failed, if one did.
    pub failure: Option<Failure>,
    /// The newest progress line in rank 0's log.
    pub progress: Option<Progress>,
}

/// An event to publish about the TrainingJob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// A Warning rather than Normal event.
    pub warning: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// What happened, for `kubectl describe`.
    pub message: String,
}

/// What to do.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The status to write (always written first, so a crash never loses a count).
    pub status: TrainingJobStatus,
    /// The objects of a new attempt.
    pub create: Option<Attempt>,
    /// Set `spec.suspend` of this batch Job.
    pub suspend: Option<(String, bool)>,
    /// Delete the TrainingJob (its TTL after finishing ran out).
    pub delete: bool,
    /// Events, in order.
    pub notes: Vec<Note>,
    /// Look again after this long, even if nothing changes.
    pub requeue: Option<Duration>,
}

/// The attempt the TrainingJob is on: the status' or the newest Job's, whichever is later, so a
/// status write lost in an operator crash never makes an attempt run twice.
pub fn current_attempt(tj: &TrainingJob, jobs: &[Job]) -> u32 {
    let recorded = tj.status.as_ref().map_or(0, |s| s.attempt);
    let newest = jobs
        .iter()
        .filter_map(observe::attempt_of)
        .max()
        .unwrap_or(0);
    recorded.max(newest).max(1)
}

fn seconds_since(then: &Option<Time>, now: Timestamp) -> u64 {
    then.as_ref()
        .map_or(0, |t| now.duration_since(t.0).as_secs().max(0) as u64)
}

/// Decides what to do about `tj` at `now`.
pub fn plan(tj: &TrainingJob, observed: &Observed, now: Timestamp) -> Plan {
    let before = tj.status.clone().unwrap_or_default();
    let mut status = before.clone();
    status.observed_generation = tj.metadata.generation;
    let mut out = Plan::default();

    if matches!(before.phase, Some(Phase::Succeeded | Phase::Failed)) {
        if let Some(ttl) = tj.spec.run_policy.ttl_seconds_after_finished {
            let done = seconds_since(&before.completion_time, now);
            if done >= ttl {
                out.delete = true;
                out.notes.push(normal(
                    "Deleted",
                    format!("TTL of {ttl}s after finishing ran out"),
                ));
            } else {
                out.requeue = Some(Duration::from_secs(ttl - done));
            }
        }
        out.status = status;
        return out;
    }

    let mut problems: Vec<String> = tj.spec.problems().iter().map(|p| p.to_string()).collect();
    if tj.name_any().len() > MAX_NAME_LEN {
        problems.push(format!(
            "metadata.name: at most {MAX_NAME_LEN} characters (pod host names add the attempt and rank), got {}",
            tj.name_any().len()
        ));
    }
    if !problems.is_empty() {
        let message = problems.join("; ");
        finish(&mut status, Phase::Failed, "InvalidSpec", &message, now);
        out.notes.push(warning("InvalidSpec", message));
        out.status = status;
        return out;
    }

    status.start_time.get_or_insert(Time(now));
    if let Some(progress) = &observed.progress {
        status.progress = Some(progress.clone());
    }
    let elapsed = seconds_since(&status.start_time, now);
    let deadline_left = tj
        .spec
        .run_policy
        .active_deadline_seconds
        .map(|d| d.saturating_sub(elapsed));
    if deadline_left == Some(0) {
        let message = format!(
            "ran {elapsed}s, past runPolicy.activeDeadlineSeconds ({}s)",
            tj.spec.run_policy.active_deadline_seconds.unwrap_or(0)
        );
        finish(
            &mut status,
            Phase::Failed,
            "DeadlineExceeded",
            &message,
            now,
        );
        out.notes.push(warning("DeadlineExceeded", message));
        out.status = status;
        return out;
    }

    let mut attempt = current_attempt(tj, &observed.jobs);
    let failed_before = observed
        .jobs
        .iter()
        .filter(|j| observe::attempt_of(j).is_some_and(|a| a < attempt))
        .filter(|j| matches!(observe::finished(j), Some(Finished::Failed { .. })))
        .count() as u32;
    status.restart_count = status.restart_count.max(failed_before);
    status.attempt = attempt;
    let queued = tj.spec.scheduling.queue_name.is_some();
    let suspend = tj.spec.run_policy.suspend;
    let current = observed
        .jobs
        .iter()
        .find(|j| observe::attempt_of(j) == Some(attempt));

    let create = |attempt: u32, out: &mut Plan| {
        out.create = Some(desired::attempt(
            tj,
            AttemptParams {
                attempt,
                suspend: suspend || queued,
                deadline_left,
            },
        ));
    };

    match current.map(|j| (j, observe::finished(j))) {
        None => {
            create(attempt, &mut out);
            status.workers_active = 0;
            status.workers_ready = 0;
            out.notes.push(normal(
                "Started",
                format!(
                    "attempt {attempt}: {} pod(s) x {} process(es) as job {}",
                    tj.spec.parallelism.nodes,
                    tj.spec.parallelism.procs_per_node,
                    names::attempt_name(tj, attempt)
                ),
            ));
            set_phase(
                &mut status,
                if suspend {
                    Phase::Suspended
                } else {
                    Phase::Pending
                },
                now,
            );
        }
        Some((_, Some(Finished::Complete))) => {
            status.workers_active = 0;
            status.workers_ready = 0;
            if let Some(p) = status.progress.as_mut() {
                p.phase = ferrotune_config::progress::RunPhase::Done;
            }
            let message = format!("attempt {attempt} finished training and evaluation");
            finish(&mut status, Phase::Succeeded, "Succeeded", &message, now);
            out.notes.push(normal("Succeeded", message));
        }
        Some((job, Some(Finished::Failed { reason, message }))) => {
            status.workers_active = 0;
            status.workers_ready = 0;
            let failure = observed.failure.clone().unwrap_or(Failure {
                attempt,
                reason: Some(reason.clone()),
                message: Some(message.clone()),
                ..Default::default()
            });
            let what = describe(&failure, &job.name_any());
            status.last_failure = Some(failure);
            status.restart_count = failed_before + 1;
            out.notes.push(warning("AttemptFailed", what.clone()));
            let limit = tj.spec.run_policy.backoff_limit;
            if reason == "DeadlineExceeded" {
                finish(&mut status, Phase::Failed, "DeadlineExceeded", &what, now);
                out.notes.push(warning("DeadlineExceeded", what));
            } else if status.restart_count > limit {
                let message = format!(
                    "{} failed attempt(s), backoffLimit {limit}: {what}",
                    status.restart_count
                );
                finish(
                    &mut status,
                    Phase::Failed,
                    "BackoffLimitExceeded",
                    &message,
                    now,
                );
                out.notes.push(warning("BackoffLimitExceeded", message));
            } else {
                attempt += 1;
                status.attempt = attempt;
                create(attempt, &mut out);
                let message = format!(
                    "restart {} of {limit}: attempt {attempt} resumes from the newest checkpoint",
                    status.restart_count
                );
                condition(
                    &mut status,
                    "Restarting",
                    true,
                    "AttemptFailed",
                    &message,
                    now,
                );
                out.notes.push(normal("Restarting", message));
                set_phase(&mut status, Phase::Restarting, now);
            }
        }
        Some((job, None)) => {
            let js = job.status.clone().unwrap_or_default();
            status.workers_active = js.active.unwrap_or(0).max(0) as u32;
            status.workers_ready = js.ready.unwrap_or(0).max(0) as u32;
            let job_suspended = job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
            if suspend && !job_suspended {
                out.suspend = Some((job.name_any(), true));
                out.notes.push(normal(
                    "Suspended",
                    "pods stopped; a checkpoint was written on SIGTERM".into(),
                ));
            } else if !suspend && job_suspended && !queued {
                out.suspend = Some((job.name_any(), false));
                out.notes.push(normal(
                    "Resumed",
                    "pods start again from the newest checkpoint".into(),
                ));
            }
            let phase = if suspend || (job_suspended && out.suspend.is_none()) {
                Phase::Suspended
            } else if status.workers_active >= tj.spec.parallelism.nodes && !job_suspended {
                Phase::Running
            } else {
                before
                    .phase
                    .filter(|p| *p == Phase::Restarting)
                    .unwrap_or(Phase::Pending)
            };
            if phase == Phase::Running && before.phase != Some(Phase::Running) {
                out.notes.push(normal(
                    "Running",
                    format!(
                        "all {} pod(s) of attempt {attempt} are running",
                        tj.spec.parallelism.nodes
                    ),
                ));
            }
            if phase == Phase::Running {
                condition(&mut status, "Restarting", false, "Running", "", now);
            }
            set_phase(&mut status, phase, now);
        }
    }

    out.requeue = match status.phase {
        Some(Phase::Running) => Some(Duration::from_secs(30)),
        Some(Phase::Pending | Phase::Restarting) => Some(Duration::from_secs(10)),
        _ => None,
    };
    if let Some(left) = deadline_left.filter(|_| !is_terminal(&status)) {
        let left = Duration::from_secs(left);
        out.requeue = Some(out.requeue.map_or(left, |r| r.min(left)));
    }
    if let (Some(ttl), true) = (
        tj.spec.run_policy.ttl_seconds_after_finished,
        is_terminal(&status),
    ) {
        out.requeue = Some(Duration::from_secs(ttl));
    }
    out.status = status;
    out
}

fn is_terminal(status: &TrainingJobStatus) -> bool {
    matches!(status.phase, Some(Phase::Succeeded | Phase::Failed))
}

fn describe(f: &Failure, job: &str) -> String {
    let mut s = format!("attempt {} ({job})", f.attempt);
    if let Some(rank) = f.node_rank {
        s += &format!(": node rank {rank}");
    }
    if let Some(code) = f.exit_code {
        s += &format!(" exited with code {code}");
    }
    if let Some(reason) = &f.reason {
        s += &format!(" ({reason})");
    }
    if let Some(message) = f.message.as_deref().filter(|m| !m.is_empty()) {
        s += &format!(": {}", message.lines().last().unwrap_or(message));
    }
    s
}

fn normal(reason: &'static str, message: String) -> Note {
    Note {
        warning: false,
        reason,
        message,
    }
}

fn warning(reason: &'static str, message: String) -> Note {
    Note {
        warning: true,
        reason,
        message,
    }
}

/// Sets the phase and the conditions that mirror it (Running, Suspended).
fn set_phase(status: &mut TrainingJobStatus, phase: Phase, now: Timestamp) {
    status.phase = Some(phase);
    let running = phase == Phase::Running;
    let suspended = phase == Phase::Suspended;
    if running || has(status, "Running") {
        condition(
            status,
            "Running",
            running,
            if running {
                "AllPodsRunning"
            } else {
                "NotRunning"
            },
            "",
            now,
        );
    }
    if suspended || has(status, "Suspended") {
        condition(
            status,
            "Suspended",
            suspended,
            if suspended { "Suspended" } else { "Resumed" },
            "",
            now,
        );
    }
}

fn finish(
    status: &mut TrainingJobStatus,
    phase: Phase,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    set_phase(status, phase, now);
    status.completion_time = Some(Time(now));
    let kind = if phase == Phase::Succeeded {
        "Succeeded"
    } else {
        "Failed"
    };
    condition(status, kind, true, reason, message, now);
    if has(status, "Restarting") {
        condition(status, "Restarting", false, reason, "", now);
    }
}

fn has(status: &TrainingJobStatus, kind: &str) -> bool {
    status.conditions.iter().any(|c| c.type_ == kind)
}

/// Upserts a condition; its transition time changes only when its status does.
fn condition(
    status: &mut TrainingJobStatus,
    kind: &str,
    on: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let value = if on { "True" } else { "False" };
    let generation = status.observed_generation;
    match status.conditions.iter_mut().find(|c| c.type_ == kind) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = Time(now);
            }
            c.status = value.into();
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None if on => status.conditions.push(Condition {
            type_: kind.into(),
            status: value.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation: generation,
        }),
        None => {}
    }
}
