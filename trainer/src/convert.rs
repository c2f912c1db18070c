//! `ferrotune convert`, and the migration step of `train`: Axolotl, accelerate and DeepSpeed
//! configs are mapped onto ferrotune's config (ferrotune_config::migrate), the report of what
//! mapped to what is logged, and `convert` prints the equivalent ferrotune YAML or a TrainingJob.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use ferrotune_config::Config;
use ferrotune_config::migrate::{self, Kind, Migration, Request};
use ferrotune_crds::{ClaimMount, Parallelism, Storage, TrainingJob, TrainingJobSpec};

/// Launcher files and strictness, shared by `train` and `convert`.
#[derive(Debug, Clone, Default, Args)]
pub struct MigrationArgs {
    /// An accelerate config (as `accelerate config` writes it). distributed_type
    /// (NO, MULTI_GPU, MULTI_CPU, FSDP, DEEPSPEED), fsdp_config.fsdp_sharding_strategy
    /// (FULL_SHARD -> zero3, SHARD_GRAD_OP -> zero2, NO_SHARD -> ddp, HYBRID_SHARD*),
    /// deepspeed_config.zero_stage and mixed_precision become `distributed` and `training`
    /// settings; num_machines and num_processes give the launch shape (processes per node =
    /// num_processes / num_machines).
    #[arg(long, value_name = "FILE")]
    pub accelerate_config: Option<PathBuf>,
    /// A DeepSpeed JSON config. zero_optimization.stage (0 -> ddp, 1 and 2 -> zero2, 3 -> zero3),
    /// reduce_bucket_size / allgather_bucket_size (elements -> distributed.bucket_size_mb of f32
    /// gradients), offload_* (unsupported), explicit batch, clipping, optimizer and scheduler
    /// values ("auto" keeps the training config's). It wins over a `deepspeed:` file named in
    /// the Axolotl or accelerate config.
    #[arg(long, value_name = "FILE")]
    pub deepspeed: Option<PathBuf>,
    /// Fail, naming them, when any key cannot be honoured or is unknown to the tool it was
    /// written for (by default they are listed in one warning and left out).
    #[arg(long)]
    pub strict: bool,
}

/// `ferrotune convert` arguments.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The files to convert: one Axolotl (or ferrotune) config, optionally with an accelerate
    /// config and a DeepSpeed JSON config; each is told apart by its keys.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub migration: MigrationArgs,
    /// Override one value of the resulting ferrotune config (see `train --set`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Print a TrainingJob manifest (ferrotune.dev/v1alpha1) instead of the config: the config
    /// becomes spec.training and the launch shape spec.parallelism (nodes = num_machines,
    /// procsPerNode = num_processes / num_machines, masterPort = main_process_port).
    #[arg(long)]
    pub as_trainingjob: bool,
    /// The trainer image of the TrainingJob [default: ferrotune:latest].
    #[arg(long, value_name = "IMAGE", requires = "as_trainingjob")]
    pub image: Option<String>,
    /// metadata.name of the TrainingJob [default: the first file's name, made a DNS label].
    #[arg(long, value_name = "NAME", requires = "as_trainingjob")]
    pub name: Option<String>,
    /// The PersistentVolumeClaim for outputs and checkpoints, mounted at /outputs
    /// [default: ferrotune-outputs].
    #[arg(long, value_name = "PVC", requires = "as_trainingjob")]
    pub claim: Option<String>,
}

/// Mount path of the output claim in a converted TrainingJob.
pub const OUTPUT_MOUNT: &str = "/outputs";

/// Reads a training config for `train` / `eval`: a ferrotune config as it is, an Axolotl config
/// (and launcher files) through the migration, whose report is logged.
pub fn load(config: &Path, overrides: &[String], m: &MigrationArgs) -> anyhow::Result<Config> {
    let migration = migrate::migrate(&request(vec![config.to_path_buf()], overrides, m))?;
    log_report(&migration, m, false);
    if let Some(hint) = migration.launch.launch_hint()
        && crate::dist::WorldEnv::from_env().ok().flatten().is_none()
    {
        tracing::warn!(
            "the launcher config asks for {} processes but this is one: {hint}",
            migration.launch.world_size()
        );
    }
    Ok(migration.config)
}

fn request(files: Vec<PathBuf>, overrides: &[String], m: &MigrationArgs) -> Request {
    Request {
        files,
        accelerate: m.accelerate_config.clone(),
        deepspeed: m.deepspeed.clone(),
        overrides: overrides.to_vec(),
        strict: m.strict,
    }
}

/// Logs what mapped to what (at info for `convert`, debug for `train`) and, in one warning,
/// what cannot be honoured.
fn log_report(migration: &Migration, m: &MigrationArgs, verbose: bool) {
    let migrated = migration.main_kind == Kind::Axolotl
        || m.accelerate_config.is_some()
        || m.deepspeed.is_some();
    if !migrated && migration.report.mapped.is_empty() {
        return;
    }
    if migration.main_kind == Kind::Axolotl && !verbose {
        tracing::info!(
            "read an Axolotl config: {} keys mapped, {} need nothing, {} cannot be honoured, {} \
             unknown (-v lists them; `ferrotune convert` prints the equivalent config)",
            migration.report.mapped.len(),
            migration.report.ignored.len(),
            migration.report.unsupported.len(),
            migration.report.unknown.len()
        );
    }
    for line in migration.report.mapping_lines() {
        if verbose {
            eprintln!("{line}");
        } else {
            tracing::debug!("{line}");
        }
    }
    if let Some(problems) = migration.report.problems() {
        tracing::warn!("{problems}\n(pass --strict to make this an error)");
    }
}

/// Runs `ferrotune convert`: prints the YAML (or TrainingJob) on stdout, the report on stderr.
pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    let migration = migrate::migrate(&request(
        args.files.clone(),
        &args.overrides,
        &args.migration,
    ))?;
    log_report(&migration, &args.migration, true);
    let sources: Vec<String> = args
        .files
        .iter()
        .chain(&args.migration.accelerate_config)
        .chain(&args.migration.deepspeed)
        .map(|p| p.display().to_string())
        .collect();
    let text = if args.as_trainingjob {
        let job = trainingjob(&migration, args)?;
        let yaml = serde_saphyr::to_string(&job).context("serialising the TrainingJob")?;
        format!(
            "# TrainingJob converted by `ferrotune convert` from {}\n{yaml}",
            sources.join(", ")
        )
    } else {
        let launch = match migration.launch.launch_hint() {
            Some(hint) => format!("# {hint}\n"),
            None => String::new(),
        };
        format!(
            "# ferrotune config converted by `ferrotune convert` from {}\n\
             # Run it with: ferrotune train --config FILE\n{launch}{}",
            sources.join(", "),
            migration.config.to_yaml()
        )
    };
    print!("{text}");
    Ok(())
}

/// The TrainingJob for a migration; errors list every rule it breaks.
pub fn trainingjob(migration: &Migration, args: &ConvertArgs) -> anyhow::Result<TrainingJob> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => dns_label(
            args.files[0]
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("ferrotune"),
        ),
    };
    let launch = migration.launch;
    let spec = TrainingJobSpec {
        training: migration.config.clone(),
        image: args
            .image
            .clone()
            .unwrap_or_else(|| "ferrotune:latest".into()),
        image_pull_policy: None,
        parallelism: Parallelism {
            nodes: launch.nodes,
            procs_per_node: launch.procs_per_node,
            master_port: launch
                .master_port
                .unwrap_or(Parallelism::default().master_port),
        },
        env: Vec::new(),
        resources: None,
        placement: Default::default(),
        storage: Storage {
            output: ClaimMount {
                claim_name: args
                    .claim
                    .clone()
                    .unwrap_or_else(|| "ferrotune-outputs".into()),
                mount_path: OUTPUT_MOUNT.into(),
                read_only: false,
            },
            volumes: Vec::new(),
            hf_token: None,
        },
        run_policy: Default::default(),
        scheduling: Default::default(),
    };
    let problems = spec.problems();
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::bail!("the TrainingJob would be invalid: {}", list.join("; "));
    }
    if spec.training.model.path.is_some() {
        tracing::warn!(
            "training.model.path ({}) must exist inside the pods: add the claim that holds it \
             under spec.storage.volumes, or use a Hub model (model.hub)",
            spec.training.model.path.as_deref().unwrap_or_default()
        );
    }
    Ok(TrainingJob::new(&name, spec))
}

/// A Kubernetes object name (RFC 1123 label) from a file name.
pub fn dns_label(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(63).collect();
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "ferrotune-job".into()
    } else {
        out
    }
}
