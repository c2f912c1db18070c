//! Hugging Face Hub models: the files a fine-tuning run needs, taken from the standard Hub cache
//! when they are all there (so a downloaded model loads offline), downloaded into it otherwise.

use std::path::{Path, PathBuf};

use hf_hub::{HFClientBuilder, HFError, HFRepositorySync, RepoTypeModel};

use super::safetensors::{INDEX_FILE, SINGLE_FILE, shard_names};

/// Files every model needs besides its weights.
const REQUIRED: [&str; 3] = ["config.json", "tokenizer.json", "tokenizer_config.json"];
/// Files used when the repository has them.
const OPTIONAL: [&str; 1] = ["generation_config.json"];

/// How to reach the Hub, as the Hugging Face tools read it from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The Hub cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Hub address (`HF_ENDPOINT`); `https://huggingface.co` when unset.
    pub endpoint: Option<String>,
    /// Access token (`HF_TOKEN`, else the file at `HF_TOKEN_PATH` or `$HF_HOME/token`).
    pub token: Option<String>,
    /// Never use the network (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
}

impl HubOptions {
    /// Options from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    /// Options from environment variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |key: &str| var(key).filter(|v| !v.is_empty());
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(var("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache")
                })
                .join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| hf_home.join("token"));
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        Self {
            cache_dir,
            endpoint: var("HF_ENDPOINT"),
            token,
            offline,
        }
    }
}

/// Makes `repo` at `revision` available in the Hub cache and returns its snapshot directory, which then
/// loads as a Hugging Face model directory: config, tokenizer files, and `model.safetensors` or the
/// index with every shard it lists.
pub fn fetch(repo: &str, revision: &str, options: &HubOptions) -> anyhow::Result<PathBuf> {
    let hub = Hub::new(repo, revision, options)?;
    if let Some(config) = hub.cached_snapshot() {
        return Ok(snapshot_dir(&config));
    }
    if options.offline {
        anyhow::bail!(
            "Hub model `{repo}` (revision `{revision}`) is not complete in the Hub cache at {} and HF_HUB_OFFLINE \
             is set: download it once with network access (unset HF_HUB_OFFLINE), or point model.path at a local copy",
            options.cache_dir.display()
        );
    }
    let config = hub.download(REQUIRED[0])?;
    for file in &REQUIRED[1..] {
        hub.download(file)?;
    }
    for file in OPTIONAL {
        match hub
            .repo
            .download_file()
            .filename(file)
            .revision(revision)
            .send()
        {
            Ok(_) | Err(HFError::EntryNotFound { .. }) => {}
            Err(e) => return Err(hub.error(file, e)),
        }
    }
    match hub
        .repo
        .download_file()
        .filename(INDEX_FILE)
        .revision(revision)
        .send()
    {
        Ok(index) => {
            for shard in shard_names(&index)? {
                hub.download(&shard)?;
            }
        }
        Err(HFError::EntryNotFound { .. }) => {
            hub.download(SINGLE_FILE)?;
        }
        Err(e) => return Err(hub.error(INDEX_FILE, e)),
    }
    Ok(snapshot_dir(&config))
}

/// One repository at one revision.
struct Hub<'a> {
    repo: HFRepositorySync<RepoTypeModel>,
    id: &'a str,
    revision: &'a str,
    options: &'a HubOptions,
}

impl<'a> Hub<'a> {
    fn new(id: &'a str, revision: &'a str, options: &'a HubOptions) -> anyhow::Result<Self> {
        let (owner, name) = hf_hub::split_id(id);
        anyhow::ensure!(
            !name.is_empty() && !name.contains('/'),
            "model.hub `{id}` is not a Hub repository id: use `owner/name`, e.g. `HuggingFaceTB/SmolLM2-135M-Instruct`"
        );
        let mut builder = HFClientBuilder::new().cache_dir(&options.cache_dir);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.endpoint(endpoint);
        }
        if let Some(token) = &options.token {
            builder = builder.token(token);
        }
        let client = builder
            .build_sync()
            .map_err(|e| anyhow::anyhow!("setting up the Hub client for `{id}`: {e}"))?;
        Ok(Self {
            repo: client.model(owner, name),
            id,
            revision,
            options,
        })
    }

    /// A file from the cache only.
    fn cached(&self, file: &str) -> Option<PathBuf> {
        self.repo
            .download_file()
            .filename(file)
            .revision(self.revision)
            .local_files_only(true)
            .send()
            .ok()
    }

    /// `config.json`'s cached path when every needed file is cached.
    fn cached_snapshot(&self) -> Option<PathBuf> {
        let config = self.cached(REQUIRED[0])?;
        for file in &REQUIRED[1..] {
            self.cached(file)?;
        }
        if self.cached(SINGLE_FILE).is_none() {
            let index = self.cached(INDEX_FILE)?;
            for shard in shard_names(&index).ok()? {
                self.cached(&shard)?;
            }
        }
        Some(config)
    }

    /// A file from the Hub (the cache answers when it is current).
    fn download(&self, file: &str) -> anyhow::Result<PathBuf> {
        self.repo
            .download_file()
            .filename(file)
            .revision(self.revision)
            .send()
            .map_err(|e| self.error(file, e))
    }

    fn error(&self, file: &str, e: HFError) -> anyhow::Error {
        anyhow::anyhow!(
            "downloading `{file}` of Hub model `{}` (revision `{}`) from {} failed: {e}. Check that the repository and \
             revision exist, that HF_TOKEN holds a token with access to it (gated and private models need one), and \
             that this machine reaches the Hub; to use only the Hub cache at {}, set HF_HUB_OFFLINE=1",
            self.id,
            self.revision,
            self.options
                .endpoint
                .as_deref()
                .unwrap_or("https://huggingface.co"),
            self.options.cache_dir.display()
        )
    }
}

fn snapshot_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .expect("a cached file lies in a snapshot directory")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_the_huggingface_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let o = HubOptions::from_vars(vars(&[
            ("HOME", "/h"),
            ("HF_TOKEN", "hf_x"),
            ("HF_HUB_OFFLINE", "TRUE"),
        ]));
        assert_eq!(o.cache_dir, PathBuf::from("/h/.cache/huggingface/hub"));
        assert_eq!(o.token.as_deref(), Some("hf_x"));
        assert!(o.offline);
        let o = HubOptions::from_vars(vars(&[
            ("HF_HOME", "/hf"),
            ("HF_HUB_OFFLINE", "0"),
            ("HF_ENDPOINT", "http://m"),
        ]));
        assert_eq!(o.cache_dir, PathBuf::from("/hf/hub"));
        assert_eq!(o.endpoint.as_deref(), Some("http://m"));
        assert!(!o.offline);
        let o = HubOptions::from_vars(vars(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/cache")]));
        assert_eq!(o.cache_dir, PathBuf::from("/cache"));
    }
}
