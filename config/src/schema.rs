//! The configuration types. Every field has a default that matches the reference course's recipe
//! (QLoRA on a Llama-architecture instruct model, summarising dialogues), so a config names only
//! what differs. Field names are snake_case, as in Hugging Face and Axolotl configs, and the same
//! block is embedded verbatim as `spec.training` of a TrainingJob.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A complete training + evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which pretrained model to start from.
    pub model: ModelConfig,
    /// Where the dialogue / summary rows come from.
    pub data: DataConfig,
    /// How a row becomes a chat prompt and a target.
    #[serde(default)]
    pub prompt: PromptConfig,
    /// LoRA adapter shape (modes `lora` and `qlora`).
    #[serde(default)]
    pub lora: LoraConfig,
    /// Optimisation settings.
    #[serde(default)]
    pub training: TrainingConfig,
    /// Multi-process settings (read when WORLD_SIZE > 1).
    #[serde(default)]
    pub distributed: DistributedConfig,
    /// Generation and ROUGE scoring.
    #[serde(default)]
    pub eval: EvalConfig,
    /// Where results go.
    #[serde(default)]
    pub output: OutputConfig,
}

/// The base model: exactly one of `path` or `hub`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A local `.gguf` file, or a Hugging Face model directory (config.json, *.safetensors,
    /// tokenizer.json). `~` and `${VAR}` are expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A Hugging Face Hub repository id such as `meta-llama/Llama-3.2-3B-Instruct`, downloaded
    /// into the Hub cache (HF_HOME) with the token in HF_TOKEN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// Hub revision: branch, tag or commit.
    #[serde(default = "default_revision")]
    pub revision: String,
    /// Name recorded in eval_results.json; defaults to the hub id or the path's file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// File format of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// Decide from the file extension (.jsonl, .json, .parquet).
    #[default]
    Auto,
    /// One JSON object per line.
    Jsonl,
    /// A JSON array of objects.
    Json,
    /// An Apache Parquet file.
    Parquet,
}

/// Dataset files and field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training rows (.jsonl, .json or .parquet).
    pub train: String,
    /// Evaluation rows. When absent, `eval_fraction` of the training file is held out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<String>,
    /// Fraction of the (shuffled) training rows held out for evaluation when `eval` is absent.
    #[serde(default)]
    pub eval_fraction: f64,
    /// File format of both files.
    #[serde(default)]
    pub format: DataFormat,
    /// The field holding the text to summarise; it fills `{dialogue}` in the prompt.
    #[serde(default = "default_input_field")]
    pub input_field: String,
    /// The field holding the reference summary: the training target.
    #[serde(default = "default_target_field")]
    pub target_field: String,
    /// Shuffle the training rows with `shuffle_seed`, then keep the first n (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train_samples: Option<usize>,
    /// Seed of the shuffle that selects the training subset.
    #[serde(default = "default_seed")]
    pub shuffle_seed: u64,
}

/// Prompt rendering. The user turn is rendered with the model's own chat template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptConfig {
    /// A system message. None by default: the chat template may add its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The user turn; `{dialogue}` is replaced by the row's input field.
    #[serde(default = "default_user_template")]
    pub user_template: String,
    /// A Jinja chat template that replaces the model's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
}

impl Default for PromptConfig {
    fn default() -> Self {
        Self {
            system: None,
            user_template: default_user_template(),
            chat_template: None,
        }
    }
}

/// A projection inside a decoder block that can carry a LoRA adapter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TargetModule {
    /// Attention query projection.
    QProj,
    /// Attention key projection.
    KProj,
    /// Attention value projection.
    VProj,
    /// Attention output projection.
    OProj,
    /// MLP gate projection.
    GateProj,
    /// MLP up projection.
    UpProj,
    /// MLP down projection.
    DownProj,
}

impl TargetModule {
    /// Every projection, in the order they run inside a block.
    pub const ALL: [TargetModule; 7] = [
        Self::QProj,
        Self::KProj,
        Self::VProj,
        Self::OProj,
        Self::GateProj,
        Self::UpProj,
        Self::DownProj,
    ];

    /// The Hugging Face module name (`q_proj`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::QProj => "q_proj",
            Self::KProj => "k_proj",
            Self::VProj => "v_proj",
            Self::OProj => "o_proj",
            Self::GateProj => "gate_proj",
            Self::UpProj => "up_proj",
            Self::DownProj => "down_proj",
        }
    }

    /// The parent module in Hugging Face's Llama (`self_attn` or `mlp`).
    pub fn parent(self) -> &'static str {
        match self {
            Self::QProj | Self::KProj | Self::VProj | Self::OProj => "self_attn",
            Self::GateProj | Self::UpProj | Self::DownProj => "mlp",
        }
    }
}

/// LoRA adapter shape, initialised as PEFT does (A Kaiming-uniform, B zero).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update.
    #[serde(default = "default_lora_r")]
    pub r: usize,
    /// Scaling numerator: the update is scaled by alpha / r.
    #[serde(default = "default_lora_alpha")]
    pub alpha: f64,
    /// Dropout on the adapter's input.
    #[serde(default = "default_lora_dropout")]
    pub dropout: f64,
    /// Projections that get adapters. Default: q_proj, v_proj (qlora); q/k/v/o_proj (lora).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_modules: Option<Vec<TargetModule>>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: default_lora_r(),
            alpha: default_lora_alpha(),
            dropout: default_lora_dropout(),
            target_modules: None,
        }
    }
}

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// LoRA adapters on a base quantised to NF4 with double quantisation.
    #[default]
    Qlora,
    /// LoRA adapters on a full-precision base.
    Lora,
    /// Every parameter.
    Full,
}

/// Learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Half a cosine from the peak down to zero.
    #[default]
    Cosine,
    /// Straight line from the peak down to zero.
    Linear,
    /// Stay at the peak.
    Constant,
}

/// How a sample longer than `max_seq_length` is handled. The target is never cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// Drop the sample (counted and reported).
    #[default]
    Drop,
    /// Shorten the input text (e.g. the dialogue) until prompt + target fit (counted and reported).
    TruncateInput,
}

/// Where the computation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// CUDA when this binary was built with it and a GPU is present, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The GPU of this process's local rank.
    Cuda,
}

/// Precision of weights and activations. Trainable parameters and optimizer state are always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f32 on the CPU, bf16 on CUDA.
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// bfloat16 (CUDA only).
    Bf16,
}

/// What to do when a step's loss or gradients are not finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NonFinitePolicy {
    /// Stop with an error naming the step.
    #[default]
    Fail,
    /// Skip the optimizer update, count it, and go on.
    Skip,
}

/// Optimisation settings. Options left out take the course's value for the chosen mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// What is trained.
    #[serde(default)]
    pub mode: Mode,
    /// Passes over the training data.
    #[serde(default = "default_epochs")]
    pub epochs: u32,
    /// Stop after this many optimizer steps (overrides `epochs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// Sequences per forward/backward on one process. Default 2 (qlora, full) or 4 (lora).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_batch_size: Option<usize>,
    /// Micro-batches per optimizer step on one process. Default 8 (qlora, full) or 4 (lora).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient_accumulation_steps: Option<usize>,
    /// Peak learning rate. Default 2e-4 (qlora, lora) or 5e-5 (full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// Schedule after warm-up.
    #[serde(default)]
    pub lr_scheduler: Schedule,
    /// Linear warm-up steps. Default 50 (qlora, lora) or 100 (full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u64>,
    /// Warm-up as a fraction of the total steps (instead of `warmup_steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_ratio: Option<f64>,
    /// AdamW decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// AdamW beta1.
    #[serde(default = "default_beta1")]
    pub adam_beta1: f64,
    /// AdamW beta2.
    #[serde(default = "default_beta2")]
    pub adam_beta2: f64,
    /// AdamW epsilon.
    #[serde(default = "default_adam_eps")]
    pub adam_epsilon: f64,
    /// Clip the global gradient norm to this value (0 disables clipping).
    #[serde(default = "default_max_grad_norm")]
    pub max_grad_norm: f64,
    /// Seed for adapter initialisation, data order and dropout.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Longest tokenised sample (prompt + target).
    #[serde(default = "default_max_seq_length")]
    pub max_seq_length: usize,
    /// What happens to a sample longer than `max_seq_length`.
    #[serde(default)]
    pub truncation: Truncation,
    /// Recompute each block's activations in the backward pass instead of keeping them.
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// Log loss, learning rate, gradient norm and throughput every this many steps.
    #[serde(default = "default_logging_steps")]
    pub logging_steps: u64,
    /// Write a checkpoint every this many optimizer steps (0: only at the end and on interrupt).
    #[serde(default = "default_save_steps")]
    pub save_steps: u64,
    /// Checkpoints kept; older ones are deleted.
    #[serde(default = "default_save_total_limit")]
    pub save_total_limit: usize,
    /// Where the computation runs.
    #[serde(default)]
    pub device: DeviceKind,
    /// Precision of weights and activations.
    #[serde(default)]
    pub dtype: Precision,
    /// What to do with a non-finite loss or gradient.
    #[serde(default)]
    pub nonfinite: NonFinitePolicy,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            epochs: default_epochs(),
            max_steps: None,
            micro_batch_size: None,
            gradient_accumulation_steps: None,
            learning_rate: None,
            lr_scheduler: Schedule::default(),
            warmup_steps: None,
            warmup_ratio: None,
            weight_decay: 0.0,
            adam_beta1: default_beta1(),
            adam_beta2: default_beta2(),
            adam_epsilon: default_adam_eps(),
            max_grad_norm: default_max_grad_norm(),
            seed: default_seed(),
            max_seq_length: default_max_seq_length(),
            truncation: Truncation::default(),
            gradient_checkpointing: false,
            logging_steps: default_logging_steps(),
            save_steps: default_save_steps(),
            save_total_limit: default_save_total_limit(),
            device: DeviceKind::default(),
            dtype: Precision::default(),
            nonfinite: NonFinitePolicy::default(),
        }
    }
}

impl TrainingConfig {
    /// Sequences per micro-batch, with the course's default for the mode.
    pub fn micro_batch_size(&self) -> usize {
        self.micro_batch_size.unwrap_or(match self.mode {
            Mode::Lora => 4,
            Mode::Qlora | Mode::Full => 2,
        })
    }

    /// Micro-batches per optimizer step, with the course's default for the mode.
    pub fn gradient_accumulation_steps(&self) -> usize {
        self.gradient_accumulation_steps.unwrap_or(match self.mode {
            Mode::Lora => 4,
            Mode::Qlora | Mode::Full => 8,
        })
    }

    /// Peak learning rate, with the course's default for the mode.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate.unwrap_or(match self.mode {
            Mode::Qlora | Mode::Lora => 2e-4,
            Mode::Full => 5e-5,
        })
    }

    /// Warm-up steps for a run of `total_steps` optimizer steps.
    pub fn warmup_steps(&self, total_steps: u64) -> u64 {
        match (self.warmup_steps, self.warmup_ratio) {
            (Some(steps), _) => steps,
            (None, Some(ratio)) => (ratio * total_steps as f64).ceil() as u64,
            (None, None) => match self.mode {
                Mode::Qlora | Mode::Lora => 50,
                Mode::Full => 100,
            },
        }
    }
}

/// How work is split across processes. Accepted aliases name the same two sharding levels as
/// PyTorch FSDP and DeepSpeed do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Replicated parameters and optimizer state; gradients all-reduced.
    #[default]
    Ddp,
    /// Gradients reduce-scattered and optimizer state sharded; parameters replicated.
    #[serde(
        alias = "shard_grad_op",
        alias = "fsdp_shard_grad_op",
        alias = "deepspeed_zero2"
    )]
    Zero2,
    /// Parameters, gradients and optimizer state all sharded; parameters gathered per layer.
    #[serde(
        alias = "full_shard",
        alias = "fsdp",
        alias = "fsdp_full_shard",
        alias = "deepspeed_zero3"
    )]
    Zero3,
}

impl Strategy {
    /// Every spelling accepted in a config, with the strategy it means.
    pub const NAMES: [(&'static str, Strategy); 10] = [
        ("ddp", Strategy::Ddp),
        ("zero2", Strategy::Zero2),
        ("shard_grad_op", Strategy::Zero2),
        ("fsdp_shard_grad_op", Strategy::Zero2),
        ("deepspeed_zero2", Strategy::Zero2),
        ("zero3", Strategy::Zero3),
        ("full_shard", Strategy::Zero3),
        ("fsdp", Strategy::Zero3),
        ("fsdp_full_shard", Strategy::Zero3),
        ("deepspeed_zero3", Strategy::Zero3),
    ];
}

impl JsonSchema for Strategy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Strategy".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
        schemars::json_schema!({
            "description": "ddp | zero2 | zero3. Aliases: shard_grad_op, fsdp_shard_grad_op and \
                            deepspeed_zero2 mean zero2; full_shard, fsdp, fsdp_full_shard and \
                            deepspeed_zero3 mean zero3.",
            "type": "string",
            "enum": names,
        })
    }
}

/// Collective-communication backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommBackend {
    /// NCCL on CUDA, TCP rings on the CPU.
    #[default]
    Auto,
    /// NCCL (CUDA builds only).
    Nccl,
    /// Ring collectives over TCP sockets.
    Tcp,
}

/// Multi-process training. World size, ranks and the rendezvous address come from the environment
/// (WORLD_SIZE, NODE_RANK, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT), as torchrun sets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistributedConfig {
    /// How parameters, gradients and optimizer state are split across ranks.
    #[serde(default)]
    pub strategy: Strategy,
    /// Collective backend.
    #[serde(default)]
    pub backend: CommBackend,
    /// Gradient bucket size of DDP's all-reduce, in MiB.
    #[serde(default = "default_bucket_mb")]
    pub bucket_size_mb: f64,
    /// Seconds to wait for every rank at rendezvous and in each collective.
    #[serde(default = "default_dist_timeout")]
    pub timeout_seconds: u64,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            backend: CommBackend::default(),
            bucket_size_mb: default_bucket_mb(),
            timeout_seconds: default_dist_timeout(),
        }
    }
}

/// Generation and ROUGE scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Score the first n evaluation rows.
    #[serde(default = "default_eval_samples")]
    pub num_samples: usize,
    /// Greedy decoding stops after this many new tokens (or at end of turn).
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
    /// Prompts decoded together.
    #[serde(default = "default_eval_batch")]
    pub batch_size: usize,
    /// `train` scores the untuned model before training.
    #[serde(default)]
    pub before_training: bool,
    /// `train` scores the tuned model after training.
    #[serde(default = "default_true")]
    pub after_training: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            num_samples: default_eval_samples(),
            max_new_tokens: default_max_new_tokens(),
            batch_size: default_eval_batch(),
            before_training: false,
            after_training: true,
        }
    }
}

/// Output directory and export options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Checkpoints, adapters or model, metrics and evaluation results go here.
    #[serde(default = "default_output_dir")]
    pub dir: String,
    /// Also write `merged_model/`: the base with the adapter folded in (lora, qlora).
    #[serde(default)]
    pub merge_adapter: bool,
    /// Resume from the newest checkpoint in `dir` when there is one.
    #[serde(default = "default_true")]
    pub resume: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            dir: default_output_dir(),
            merge_adapter: false,
            resume: true,
        }
    }
}

impl Config {
    /// The projections that carry adapters, with the course's default for the mode.
    pub fn lora_targets(&self) -> Vec<TargetModule> {
        match &self.lora.target_modules {
            Some(targets) => targets.clone(),
            None => match self.training.mode {
                Mode::Qlora => vec![TargetModule::QProj, TargetModule::VProj],
                Mode::Lora | Mode::Full => {
                    vec![
                        TargetModule::QProj,
                        TargetModule::KProj,
                        TargetModule::VProj,
                        TargetModule::OProj,
                    ]
                }
            },
        }
    }
}

/// The course's instruction and layout for one user turn.
pub const DEFAULT_USER_TEMPLATE: &str = "You are a helpful assistant who writes concise, factual \
summaries of conversations. Summarize the following conversation into a single sentence.\n\n\
## Dialogue:\n{dialogue}\n## Summary:";

fn default_user_template() -> String {
    DEFAULT_USER_TEMPLATE.to_string()
}
fn default_revision() -> String {
    "main".into()
}
fn default_input_field() -> String {
    "dialogue".into()
}
fn default_target_field() -> String {
    "summary".into()
}
fn default_seed() -> u64 {
    42
}
fn default_lora_r() -> usize {
    16
}
fn default_lora_alpha() -> f64 {
    32.0
}
fn default_lora_dropout() -> f64 {
    0.1
}
fn default_epochs() -> u32 {
    1
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_adam_eps() -> f64 {
    1e-8
}
fn default_max_grad_norm() -> f64 {
    1.0
}
fn default_max_seq_length() -> usize {
    512
}
fn default_logging_steps() -> u64 {
    25
}
fn default_save_steps() -> u64 {
    100
}
fn default_save_total_limit() -> usize {
    2
}
fn default_bucket_mb() -> f64 {
    25.0
}
fn default_dist_timeout() -> u64 {
    300
}
fn default_eval_samples() -> usize {
    200
}
fn default_max_new_tokens() -> usize {
    256
}
fn default_eval_batch() -> usize {
    8
}
fn default_output_dir() -> String {
    "outputs/run".into()
}
fn default_true() -> bool {
    true
}
