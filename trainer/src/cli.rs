//! The `ferrotune` command line: `train`, `eval`, `report` and `convert`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ferrotune_config::Config;

use crate::convert::{self, ConvertArgs, MigrationArgs};
use crate::dist::{WorldEnv, launch};
use crate::eval;
use crate::report;
use crate::train::{self, Finish};

/// Fine-tune Llama-architecture language models with LoRA, QLoRA or full fine-tuning, then score
/// them with ROUGE. One binary for the CPU and CUDA, one process or many.
#[derive(Debug, Parser)]
#[command(
    name = "ferrotune",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fine-tune a model as the config says, then (by default) generate and score summaries.
    ///
    /// Everything goes to `output.dir`: checkpoints/, metrics.jsonl, lora_adapters/ (lora,
    /// qlora) or final_model/ (full), training_duration.json, and eval_results.json with
    /// predictions.jsonl beside the adapters or model. A run resumes from the newest checkpoint
    /// in `output.dir`; Ctrl-C (or SIGTERM) writes a checkpoint before exiting.
    ///
    /// The config may also be an Axolotl config, run as it is: it is recognised by its keys
    /// (base_model, datasets, adapter, micro_batch_size, ...) and mapped onto ferrotune's schema.
    /// --accelerate-config and --deepspeed add the launcher's distributed settings. Keys that
    /// cannot be honoured, and keys the tool itself would not know, are listed in one warning
    /// (an error with --strict); -v lists what mapped to what, and `ferrotune convert` prints the
    /// equivalent ferrotune config. See docs/migration.md.
    Train(TrainArgs),
    /// Generate summaries for the evaluation rows with a trained model and score them with ROUGE,
    /// or re-score an existing predictions.jsonl.
    Eval(EvalArgs),
    /// Write an HTML report of one or more training runs: loss, learning-rate, gradient-norm,
    /// throughput and memory curves (several runs overlaid), ROUGE before vs after training,
    /// sample predictions beside references, the config, wall time and hardware.
    ///
    /// The page is one self-contained file; the charts are also written as SVG files into
    /// plots/ beside it. Each run is labelled by its directory's name.
    Report(ReportArgs),
    /// Convert Axolotl, accelerate and DeepSpeed configs into a ferrotune config (or a
    /// TrainingJob), to move over for good.
    ///
    /// Prints the equivalent ferrotune YAML on stdout (it loads with `ferrotune train --config`)
    /// and, on stderr, what each key became, what needs nothing and why, and in one warning what
    /// cannot be honoured and which keys the tool would not know.
    ///
    /// Axolotl: base_model (-> model.path or model.hub), adapter + load_in_4bit (-> training.mode
    /// qlora | lora | full), lora_r / lora_alpha / lora_dropout / lora_target_modules /
    /// lora_target_linear (-> lora.*), the first of datasets (path or data_files -> data.train;
    /// type alpaca, or a custom {field_instruction, field_output, format} -> data.input_field,
    /// data.target_field, prompt.user_template; chat_template / messages and completion cannot
    /// map), test_datasets / val_set_size (-> data.eval / data.eval_fraction), sequence_len,
    /// micro_batch_size, gradient_accumulation_steps, num_epochs, max_steps, learning_rate,
    /// lr_scheduler, warmup_steps / warmup_ratio, optimizer, weight_decay, max_grad_norm, bf16,
    /// gradient_checkpointing, output_dir, save_steps, save_total_limit, logging_steps, seed,
    /// and deepspeed / fsdp / fsdp_config (-> distributed.strategy).
    ///
    /// The world size is not part of a ferrotune config (it comes from WORLD_SIZE / NODE_RANK /
    /// NPROC_PER_NODE, as torchrun sets them): the accelerate config's num_machines and
    /// num_processes become a launch comment, or spec.parallelism with --as-trainingjob.
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// The YAML config (see configs/ for examples), or an Axolotl config.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Override one config value, e.g. `--set training.max_steps=20`; repeatable, applied in order.
    /// Values are YAML: `--set lora.target_modules=[q_proj,v_proj]`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<Config> {
        convert::load(&self.config, &self.overrides, &MigrationArgs::default())
    }
}

#[derive(Debug, Args)]
struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    migration: MigrationArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["model_path", "predictions"])))]
struct EvalArgs {
    /// The config the model was trained with (model, data, prompt and eval settings).
    #[arg(short, long, value_name = "FILE", requires = "model_path")]
    config: Option<PathBuf>,
    /// A `lora_adapters/` directory (applied to the config's base model) or a full model
    /// directory such as `final_model/`. Results are written into it.
    #[arg(long, value_name = "DIR", requires = "config")]
    model_path: Option<PathBuf>,
    /// Re-score this predictions.jsonl ({dialogue, reference, prediction} per line) without
    /// generating; prints the eval_results JSON.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["config", "model_path"])]
    predictions: Option<PathBuf>,
    /// Override one config value (see `train --set`).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
    overrides: Vec<String>,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Output directories of `ferrotune train` (metrics.jsonl, eval results, config.yaml).
    #[arg(required = true, value_name = "OUTPUT_DIR")]
    dirs: Vec<PathBuf>,
    /// The HTML file to write. Default: OUTPUT_DIR/report.html for one run, report.html in the
    /// current directory for several.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Sample predictions shown per run.
    #[arg(long, value_name = "N", default_value_t = report::DEFAULT_SAMPLES)]
    samples: usize,
}

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli.command) {
        Ok(Finish::Completed) => ExitCode::SUCCESS,
        Ok(Finish::Interrupted) => ExitCode::from(130),
        Err(e) => {
            let message = render_error(&e);
            eprintln!("error: {message}");
            report_termination(&message);
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<Finish> {
    match command {
        Command::Train(args) => {
            let config =
                convert::load(&args.config.config, &args.config.overrides, &args.migration)?;
            let world = WorldEnv::from_env()?;
            match &world {
                Some(env) if launch::should_launch(env) => launch::run(env),
                _ => train::run(&config, world.as_ref()),
            }
        }
        Command::Eval(args) => {
            if let Some(file) = args.predictions {
                let results = eval::results::evaluate_file(&file)?;
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                let config = ConfigArgs {
                    config: args.config.expect("clap requires it"),
                    overrides: args.overrides,
                };
                eval::run(&config.load()?, &args.model_path.expect("clap requires it"))?;
            }
            Ok(Finish::Completed)
        }
        Command::Report(args) => {
            let out = args.out.unwrap_or_else(|| match args.dirs.as_slice() {
                [one] => one.join("report.html"),
                _ => PathBuf::from("report.html"),
            });
            let written = report::write(&args.dirs, &out, args.samples)?;
            for missing in &written.missing {
                tracing::warn!("{}: not drawn, {}", missing.title, missing.reason);
            }
            for plot in &written.plots {
                tracing::info!("wrote {}", plot.display());
            }
            println!("{}", written.html.display());
            Ok(Finish::Completed)
        }
        Command::Convert(args) => {
            convert::run(&args)?;
            Ok(Finish::Completed)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// The error and its causes on one line, each cause once: error types that already print their
/// source are not followed by it again.
fn render_error(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    message
}

/// Kubernetes shows a container's termination message in the pod status: put the error there.
fn report_termination(message: &str) {
    let path = std::path::Path::new("/dev/termination-log");
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) {
        let _ = f.write_all(message.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
