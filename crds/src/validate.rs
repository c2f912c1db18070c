//! Checks a TrainingJob's spec the way the API server's schema and CEL rules would, plus the
//! trainer's own config rules, so the operator and `render` reject a bad manifest with the field
//! and what is allowed before any pod starts.

use crate::TrainingJobSpec;

/// Variables that hold a Hugging Face token: only ever set from a Secret.
const SECRET_ENV: [&str; 2] = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"];

/// One rule a spec breaks: the dotted field (from `spec.`) and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted path below the resource, e.g. `spec.training.lora.r`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl TrainingJobSpec {
    /// Every rule the spec breaks, empty when it is valid.
    pub fn problems(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut bad = |field: &str, message: String| {
            out.push(Invalid {
                field: format!("spec.{field}"),
                message,
            })
        };
        if let Err(p) = self.training.validate() {
            bad(&format!("training.{}", p.field), p.message);
        }
        if self.image.trim().is_empty() {
            bad("image", "must name the trainer image".into());
        }
        if self.storage.hf_token.is_some() && self.training.model.hub.is_none() {
            bad(
                "storage.hfToken",
                "is only used with training.model.hub".into(),
            );
        }
        for (i, e) in self.env.iter().enumerate() {
            if SECRET_ENV.contains(&e.name.as_str()) && e.value.is_some() {
                bad(
                    &format!("env[{i}].value"),
                    format!(
                        "{} is never written into the manifest: put the token in a Secret and \
                         set storage.hfToken",
                        e.name
                    ),
                );
            }
        }
        let mut mounts = vec![&self.storage.output];
        for (i, v) in self.storage.volumes.iter().enumerate() {
            if let Some(prior) = mounts.iter().find(|m| m.mount_path == v.mount_path) {
                bad(
                    &format!("storage.volumes[{i}].mountPath"),
                    format!(
                        "{} is already the mount of claim {}",
                        v.mount_path, prior.claim_name
                    ),
                );
            }
            mounts.push(v);
        }
        for (i, m) in mounts.iter().enumerate() {
            let field = if i == 0 {
                "storage.output".to_string()
            } else {
                format!("storage.volumes[{}]", i - 1)
            };
            if m.claim_name.trim().is_empty() {
                bad(
                    &format!("{field}.claimName"),
                    "must name a PersistentVolumeClaim".into(),
                );
            }
            if !m.mount_path.starts_with('/') {
                bad(
                    &format!("{field}.mountPath"),
                    format!("must be an absolute path, got {:?}", m.mount_path),
                );
            }
        }
        if self.storage.output.read_only {
            bad(
                "storage.output.readOnly",
                "must be false: checkpoints and results are written there".into(),
            );
        }
        let p = &self.parallelism;
        if !(1..=1024).contains(&p.nodes) {
            bad(
                "parallelism.nodes",
                format!("must be in 1..=1024, got {}", p.nodes),
            );
        }
        if !(1..=64).contains(&p.procs_per_node) {
            bad(
                "parallelism.procsPerNode",
                format!("must be in 1..=64, got {}", p.procs_per_node),
            );
        }
        if p.master_port < 1024 {
            bad(
                "parallelism.masterPort",
                format!("must be in 1024..=65535, got {}", p.master_port),
            );
        }
        if self.run_policy.backoff_limit > 100 {
            bad(
                "runPolicy.backoffLimit",
                format!("must be in 0..=100, got {}", self.run_policy.backoff_limit),
            );
        }
        if self.run_policy.active_deadline_seconds == Some(0) {
            bad(
                "runPolicy.activeDeadlineSeconds",
                "must be at least 1".into(),
            );
        }
        out
    }
}
