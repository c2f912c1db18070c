//! `spec` of a TrainingJob: the training config, the image, how many pods and processes, where
//! the pods run, where models, data and outputs live, and the run policy.

use ferrotune_config::Config;
use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, ResourceRequirements, SecretKeySelector, Toleration,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A fine-tuning run: the trainer's config plus where and how its pods run.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "ferrotune.dev",
    version = "v1alpha1",
    kind = "TrainingJob",
    namespaced,
    shortname = "tj",
    status = "crate::status::TrainingJobStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Step","type":"integer","jsonPath":".status.progress.step"}"#,
    printcolumn = r#"{"name":"Total","type":"integer","jsonPath":".status.progress.totalSteps"}"#,
    printcolumn = r#"{"name":"Loss","type":"number","jsonPath":".status.progress.loss"}"#,
    printcolumn = r#"{"name":"Restarts","type":"integer","jsonPath":".status.restartCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.training.model.hub) != has(self.training.model.path)",
     "message": "training.model needs exactly one of hub (a repo id) or path (a file or directory on a volume)"},
    {"rule": "!has(self.storage.hfToken) || has(self.training.model.hub)",
     "message": "storage.hfToken is only used with training.model.hub"},
    {"rule": "!has(self.env) || self.env.all(e, !(e.name in ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) || !has(e.value))",
     "message": "a Hugging Face token is never written into the manifest: put it in a Secret and set storage.hfToken"},
]))]
pub struct TrainingJobSpec {
    /// The training config, exactly as `ferrotune train --config` reads it (snake_case keys).
    /// `distributed.strategy` (ddp | zero2 | zero3, with the fsdp / deepspeed aliases) says how
    /// the processes share the work.
    pub training: Config,
    /// The trainer image (CPU or CUDA build).
    pub image: String,
    /// Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// How many pods and processes.
    #[serde(default)]
    pub parallelism: Parallelism,
    /// Extra environment for the trainer container (e.g. `NCCL_SOCKET_IFNAME`, `NCCL_IB_HCA`).
    /// The rendezvous variables the operator sets (MASTER_ADDR, WORLD_SIZE, ...) take precedence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// CPU, memory and GPUs of each pod (e.g. `limits: {nvidia.com/gpu: 4}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Where the pods may run.
    #[serde(default)]
    pub placement: Placement,
    /// Volumes for the model, the data and the outputs, and the Hub token.
    pub storage: Storage,
    /// Restarts, deadlines, clean-up and suspension.
    #[serde(default)]
    pub run_policy: RunPolicy,
    /// Scheduler and queue.
    #[serde(default)]
    pub scheduling: Scheduling,
}

/// When the kubelet pulls the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// Every time a pod starts.
    Always,
    /// Only when the node lacks it.
    IfNotPresent,
    /// Never: the image must be on the node.
    Never,
}

/// Pods (nodes) and processes per pod; the world size is their product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parallelism {
    /// Pods, one per node; pod i has NODE_RANK i.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1024))]
    pub nodes: u32,
    /// Training processes in each pod, one per GPU (the trainer starts them, like torchrun).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 64))]
    pub procs_per_node: u32,
    /// Port of rank 0's rendezvous store.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub master_port: u16,
}

impl Parallelism {
    /// Training processes in all pods.
    pub fn world_size(&self) -> u32 {
        self.nodes * self.procs_per_node
    }
}

impl Default for Parallelism {
    fn default() -> Self {
        Self {
            nodes: 1,
            procs_per_node: 1,
            master_port: default_port(),
        }
    }
}

fn one() -> u32 {
    1
}

fn default_port() -> u16 {
    29500
}

/// Node selection for the pods.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Labels a node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node and pod (anti-)affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// ServiceAccount the pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Secrets for pulling the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

/// Where the pods find the model and data, and where they write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.volumes.all(v, v.mountPath != self.output.mountPath)",
     "message": "a volume's mountPath must differ from output.mountPath"},
]))]
pub struct Storage {
    /// The PersistentVolumeClaim for checkpoints and results; `training.output.dir` is taken
    /// relative to its mount. It must outlive the pods: attempts resume from its checkpoints.
    pub output: ClaimMount,
    /// Further claims, e.g. a model directory or a dataset (`training.model.path` and
    /// `training.data.*` then name files under their mount paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ClaimMount>,
    /// The Secret key holding a Hugging Face token, given to the trainer as HF_TOKEN (for
    /// `training.model.hub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hf_token: Option<SecretKeySelector>,
}

/// A PersistentVolumeClaim mounted in every pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimMount {
    /// Name of the claim, in the TrainingJob's namespace.
    #[schemars(length(min = 1))]
    pub claim_name: String,
    /// Absolute path of the mount in the trainer container.
    #[schemars(regex(pattern = r"^/"))]
    pub mount_path: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// Restarts, deadlines, clean-up and suspension, as Kubeflow's runPolicy has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunPolicy {
    /// Failed attempts after which the job is Failed. Each attempt restarts every pod and
    /// resumes from the newest checkpoint; the count survives operator restarts.
    #[serde(default = "default_backoff")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: u32,
    /// Seconds the job may run, over all attempts, before it is Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<u64>,
    /// Seconds after it finished that the job (and its pods) are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<u64>,
    /// Keep no pods running; set back to false to resume from the newest checkpoint.
    #[serde(default)]
    pub suspend: bool,
}

impl Default for RunPolicy {
    fn default() -> Self {
        Self {
            backoff_limit: default_backoff(),
            active_deadline_seconds: None,
            ttl_seconds_after_finished: None,
            suspend: false,
        }
    }
}

fn default_backoff() -> u32 {
    3
}

/// Which scheduler places the pods and which queue admits the job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scheduling {
    /// A scheduler other than the default (e.g. `volcano`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    /// Kueue LocalQueue (label `kueue.x-k8s.io/queue-name`); the job starts suspended until
    /// Kueue admits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
}
