//! The bad-input corpus in `tests/fixtures/bad-inputs/`: TrainingJob manifests, trainer configs,
//! datasets and model files that must each be refused with one actionable error — exit code 1
//! or 2, the file, the field or row, and what is allowed — and never a panic or a backtrace.
//!
//! Every directory below the corpus holding an `expect.yaml` is one case (see the corpus's
//! README.md for the format). Model cases copy a fixture into the case's temporary directory and
//! damage it there, as their `prepare` steps say.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

/// One case's `expect.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What is wrong with the input, in a sentence.
    about: String,
    /// How the input is fed in.
    #[serde(default)]
    run: Run,
    /// The file given to the command (`--config` of `train`, the manifest, the predictions),
    /// relative to the case directory; placeholders are substituted.
    #[serde(default = "default_input")]
    input: String,
    /// `--set` overrides for `train`.
    #[serde(default)]
    set: Vec<String>,
    /// Steps that build damaged inputs in the case's temporary directory.
    #[serde(default)]
    prepare: Vec<Step>,
    /// What the error must say.
    error: Expect,
}

fn default_input() -> String {
    "config.yaml".into()
}

/// How a case's input reaches the product.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Run {
    /// `ferrotune train --config INPUT [--set ...]`.
    #[default]
    Train,
    /// `ferrotune eval --predictions INPUT`.
    EvalPredictions,
    /// `ferrotune_crds::manifest::load(INPUT)`, as the operator's `render` reads a manifest.
    Manifest,
}

/// Substrings the error must contain; `~` where one does not apply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The file at fault.
    file: Option<String>,
    /// The field, row or tensor at fault.
    #[serde(rename = "where")]
    place: Option<String>,
    /// What is allowed or expected instead.
    allowed: Option<String>,
    /// Anything else it must say.
    #[serde(default)]
    also: Vec<String>,
}

/// Building a damaged input; paths are relative to the case's temporary directory.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Step {
    /// Copy a file, or the files of a directory, to `to`.
    Copy { from: String, to: String },
    /// Delete a file.
    Remove(String),
    /// Keep only the first `keep` bytes.
    Truncate { file: String, keep: u64 },
    /// Replace the one occurrence of `from` (bytes, e.g. in a safetensors header) with `to`.
    Replace {
        file: String,
        from: String,
        to: String,
    },
    /// Set and remove top-level keys of a JSON object file.
    Json {
        file: String,
        #[serde(default)]
        set: Map<String, Value>,
        #[serde(default)]
        remove: Vec<String>,
    },
    /// Overwrite a file with text.
    Write { file: String, text: String },
}

/// Where a case runs: its corpus directory and a fresh temporary directory.
struct Place {
    case: PathBuf,
    tmp: tempfile::TempDir,
}

impl Place {
    fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// `{fixtures}`, `{repo}`, `{corpus}`, `{case}` and `{tmp}` as paths.
    fn subst(&self, text: &str) -> String {
        [
            ("{fixtures}", common::fixtures()),
            ("{repo}", canonical(&common::repo())),
            ("{corpus}", corpus()),
            ("{case}", self.case.clone()),
            ("{tmp}", self.tmp().to_path_buf()),
        ]
        .iter()
        .fold(text.to_string(), |text, (key, path)| {
            text.replace(key, &path.display().to_string())
        })
    }

    /// A path of the case: absolute after substitution, else relative to the case directory.
    fn path(&self, written: &str) -> PathBuf {
        self.case.join(self.subst(written))
    }

    fn in_tmp(&self, written: &str) -> PathBuf {
        self.tmp().join(self.subst(written))
    }

    fn prepare(&self, step: &Step) -> Result<(), String> {
        let io = |what: String| move |e: std::io::Error| format!("{what}: {e}");
        match step {
            Step::Copy { from, to } => {
                let (from, to) = (self.path(from), self.in_tmp(to));
                if from.is_dir() {
                    std::fs::create_dir_all(&to).map_err(io(format!("{}", to.display())))?;
                    for entry in std::fs::read_dir(&from).map_err(io(from.display().to_string()))? {
                        let entry = entry.map_err(io(from.display().to_string()))?;
                        std::fs::copy(entry.path(), to.join(entry.file_name()))
                            .map_err(io(entry.path().display().to_string()))?;
                    }
                } else {
                    std::fs::copy(&from, &to).map_err(io(from.display().to_string()))?;
                }
            }
            Step::Remove(file) => {
                let file = self.in_tmp(file);
                std::fs::remove_file(&file).map_err(io(file.display().to_string()))?;
            }
            Step::Truncate { file, keep } => {
                let file = self.in_tmp(file);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .map_err(io(file.display().to_string()))?;
                f.set_len(*keep).map_err(io(file.display().to_string()))?;
            }
            Step::Replace { file, from, to } => {
                let file = self.in_tmp(file);
                let bytes = std::fs::read(&file).map_err(io(file.display().to_string()))?;
                let (from, to) = (from.as_bytes(), to.as_bytes());
                let hits: Vec<usize> = (0..bytes.len().saturating_sub(from.len() - 1))
                    .filter(|&i| bytes[i..].starts_with(from))
                    .collect();
                let [at] = hits[..] else {
                    return Err(format!(
                        "{}: `{}` occurs {} times, not once",
                        file.display(),
                        String::from_utf8_lossy(from),
                        hits.len()
                    ));
                };
                let damaged = [&bytes[..at], to, &bytes[at + from.len()..]].concat();
                std::fs::write(&file, damaged).map_err(io(file.display().to_string()))?;
            }
            Step::Json { file, set, remove } => {
                let file = self.in_tmp(file);
                let text =
                    std::fs::read_to_string(&file).map_err(io(file.display().to_string()))?;
                let mut doc: Map<String, Value> =
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
                for key in remove {
                    doc.remove(key)
                        .ok_or_else(|| format!("{}: no key `{key}` to remove", file.display()))?;
                }
                doc.extend(set.clone());
                std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap())
                    .map_err(io(file.display().to_string()))?;
            }
            Step::Write { file, text } => {
                let file = self.in_tmp(file);
                std::fs::write(&file, self.subst(text)).map_err(io(file.display().to_string()))?;
            }
        }
        Ok(())
    }

    /// The input file as the product reads it: with placeholders substituted into a copy in the
    /// temporary directory (same file name) when it has any, else the corpus file itself.
    fn input(&self, written: &str) -> PathBuf {
        let path = self.path(written);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return path;
        };
        let substituted = self.subst(&text);
        if substituted == text {
            return path;
        }
        let copy = self.tmp().join(path.file_name().expect("a file name"));
        std::fs::write(&copy, substituted).expect("write the substituted input");
        copy
    }
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn corpus() -> PathBuf {
    canonical(&common::fixtures().join("bad-inputs"))
}

/// Every case directory (one holding `expect.yaml`), sorted.
fn cases(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for entry in entries {
        if entry.join("expect.yaml").is_file() {
            out.push(entry);
        } else {
            cases(&entry, out);
        }
    }
}

/// The exit code (None in-process) and the error text of running `case`.
fn run(case: &Case, place: &Place) -> (Option<i32>, String) {
    let input = place.input(&case.input);
    let mut command = common::ferrotune();
    match case.run {
        Run::Manifest => {
            return match ferrotune_crds::manifest::load(&input) {
                Ok(_) => (Some(0), String::new()),
                Err(e) => (None, e.to_string()),
            };
        }
        Run::Train => {
            command.arg("train").arg("--config").arg(&input);
            for set in &case.set {
                command.arg("--set").arg(place.subst(set));
            }
        }
        Run::EvalPredictions => {
            command.arg("eval").arg("--predictions").arg(&input);
        }
    }
    // A backtrace must not reach the message even when the user asks for backtraces.
    let out = command
        .current_dir(place.tmp())
        .env("RUST_BACKTRACE", "1")
        .env("NO_COLOR", "1")
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("WORLD_SIZE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run ferrotune");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What is wrong with the answer to `case`, empty when it is right.
fn judge(case: &Case, place: &Place, code: Option<i32>, stderr: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    match (&case.run, code) {
        (Run::Manifest, None) => {}
        (Run::Manifest, _) => wrong.push("the manifest was accepted".into()),
        (_, Some(1 | 2)) => {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            if !last.is_some_and(|l| l.starts_with("error: ")) {
                wrong.push("the last line of stderr is not `error: ...`".into());
            }
        }
        (_, code) => wrong.push(format!("exit code {code:?}, expected 1 or 2")),
    }
    let e = &case.error;
    let named = [&e.file, &e.place, &e.allowed]
        .iter()
        .filter(|x| x.is_some())
        .count();
    if named < 2 {
        wrong.push("expect.yaml must give at least two of file, where and allowed".into());
    }
    for want in [&e.file, &e.place, &e.allowed]
        .into_iter()
        .flatten()
        .chain(&e.also)
    {
        let want = place.subst(want);
        if !stderr.contains(&want) {
            wrong.push(format!("does not say `{want}`"));
        }
    }
    for banned in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        if stderr.contains(banned) {
            wrong.push(format!("says `{banned}`"));
        }
    }
    let source_path = stderr.match_indices("src/").any(|(i, _)| {
        stderr[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != '-')
    });
    if source_path {
        wrong.push("names a source path (src/...)".into());
    }
    wrong
}

#[test]
fn every_bad_input_is_refused_with_an_actionable_error() {
    let root = corpus();
    let mut dirs = Vec::new();
    cases(&root, &mut dirs);
    let mut per_category: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    // BAD_INPUTS_SHOW=1 prints each case's error, to read them all at once.
    let show = std::env::var_os("BAD_INPUTS_SHOW").is_some();
    for dir in &dirs {
        let name = dir.strip_prefix(&root).unwrap().display().to_string();
        let category = name.split('/').next().unwrap().to_string();
        *per_category.entry(category).or_default() += 1;
        let text = std::fs::read_to_string(dir.join("expect.yaml")).unwrap();
        let case: Case = match serde_saphyr::from_str(&text) {
            Ok(case) => case,
            Err(e) => {
                failures.push(format!("{name}/expect.yaml: {e}"));
                continue;
            }
        };
        let place = Place {
            case: dir.clone(),
            tmp: tempfile::Builder::new()
                .prefix("bad-input.")
                .tempdir()
                .unwrap(),
        };
        if let Err(e) = case.prepare.iter().try_for_each(|s| place.prepare(s)) {
            failures.push(format!("{name}: preparing: {e}"));
            continue;
        }
        let (code, stderr) = run(&case, &place);
        if show {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            eprintln!("{name}: {}", last.unwrap_or_default());
        }
        let wrong = judge(&case, &place, code, &stderr);
        if !wrong.is_empty() {
            failures.push(format!(
                "{name} ({}): {}\n--- stderr ---\n{}",
                case.about,
                wrong.join("; "),
                stderr.trim_end()
            ));
        }
    }
    let counts: Vec<String> = per_category
        .iter()
        .map(|(category, n)| format!("{category}: {n}"))
        .collect();
    eprintln!("{} bad-input cases ({})", dirs.len(), counts.join(", "));
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
    for category in ["configs", "datasets", "manifests", "models"] {
        let n = per_category.get(category).copied().unwrap_or(0);
        assert!(n >= 10, "only {n} {category} cases");
    }
    assert!(dirs.len() >= 60, "only {} cases", dirs.len());
}

/// The config the dataset and model cases start from trains: each case fails for its damage.
#[test]
fn the_base_config_of_the_corpus_trains() {
    let place = Place {
        case: corpus(),
        tmp: tempfile::tempdir().unwrap(),
    };
    let out = common::ferrotune()
        .current_dir(place.tmp())
        .arg("train")
        .arg("--config")
        .arg(place.input("tiny.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
