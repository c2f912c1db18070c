//! Prometheus metrics: reconciles, failures by kind, reconcile latency, TrainingJobs by phase.

use std::collections::HashMap;
use std::sync::Mutex;

use ferrotune_crds::Phase;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

/// The operator's metrics and the registry that serves them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<ErrorLabels, Counter>,
    duration: Histogram,
    by_phase: Family<PhaseLabels, Gauge>,
    phases: Mutex<HashMap<String, Phase>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ferrotune_operator");
        let reconciles = Counter::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let by_phase = Family::<PhaseLabels, Gauge>::default();
        registry.register("reconciles", "Reconciliations run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by error kind",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconciliation took",
            duration.clone(),
        );
        registry.register("trainingjobs", "TrainingJobs by phase", by_phase.clone());
        Self {
            registry,
            reconciles,
            failures,
            duration,
            by_phase,
            phases: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Counts one reconciliation and its duration.
    pub fn reconciled(&self, seconds: f64) {
        self.reconciles.inc();
        self.duration.observe(seconds);
    }

    /// Counts a failed reconciliation.
    pub fn failed(&self, kind: &str) {
        self.failures
            .get_or_create(&ErrorLabels { error: kind.into() })
            .inc();
    }

    /// Records a TrainingJob's phase (None once it is gone).
    pub fn phase(&self, key: &str, phase: Option<Phase>) {
        let mut phases = self.phases.lock().expect("metrics lock");
        let old = match phase {
            Some(p) => phases.insert(key.into(), p),
            None => phases.remove(key),
        };
        if old == phase {
            return;
        }
        if let Some(old) = old {
            self.by_phase.get_or_create(&label(old)).dec();
        }
        if let Some(new) = phase {
            self.by_phase.get_or_create(&label(new)).inc();
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

fn label(phase: Phase) -> PhaseLabels {
    PhaseLabels {
        phase: format!("{phase:?}"),
    }
}
