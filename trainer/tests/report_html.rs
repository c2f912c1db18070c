//! `ferrotune report` on real (tiny) training runs: the page is self-contained, shows every
//! chart, the runs' numbers, predictions, config and hardware, escapes what the runs contain,
//! and says what is wrong with a directory it cannot read.

mod report_common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ferrotune::eval::results::read_predictions;
use report_common::{TinyRun, ferrotune, ferrotune_ok};

/// A dialogue and summary full of characters HTML gives meaning to.
pub const MARKUP_ROW: &str = r#"{"dialogue": "Eve: <script>alert('x')</script> & <b>bold</b>\nTom: \"quoted\" <i>", "summary": "Eve sends <b>markup</b> & Tom quotes it."}"#;

/// Two runs (LoRA and full fine-tuning of the tiny model) in a temporary directory, the first
/// with a directory name that needs escaping.
pub struct Runs {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub lora: PathBuf,
    pub full: PathBuf,
}

pub fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let rows = root.join("eval.jsonl");
        let fixture_rows =
            report_common::repo_root().join("trainer/tests/fixtures/data/rows.jsonl");
        let mut text = std::fs::read_to_string(fixture_rows).unwrap();
        text.push_str(MARKUP_ROW);
        text.push('\n');
        std::fs::write(&rows, text).unwrap();
        let lora = root.join("lora <b>&amp;");
        let full = root.join("full");
        for (dir, mode) in [(&lora, "lora"), (&full, "full")] {
            TinyRun {
                mode,
                steps: 6,
                save_steps: 0,
                eval_rows: &rows,
            }
            .train(dir);
        }
        Runs {
            _tmp: tmp,
            root,
            lora,
            full,
        }
    })
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The page's `<img>` data URIs, decoded.
fn images(html: &str) -> Vec<Vec<u8>> {
    html.split("<img src=\"")
        .skip(1)
        .map(|rest| {
            let uri = &rest[..rest.find('"').unwrap()];
            let data = uri
                .strip_prefix("data:image/svg+xml;base64,")
                .unwrap_or_else(|| panic!("not an inline SVG: {}", &uri[..40.min(uri.len())]));
            STANDARD.decode(data).unwrap()
        })
        .collect()
}

/// The texts of an SVG document's `<text>` elements, trimmed (still escaped as in the SVG).
fn svg_texts(svg: &str) -> Vec<&str> {
    svg.split("<text ")
        .skip(1)
        .map(|rest| {
            let content = &rest[rest.find('>').unwrap() + 1..];
            content[..content.find("</text>").unwrap()].trim()
        })
        .collect()
}

const CHARTS: [(&str, &str); 6] = [
    ("loss", "Training loss"),
    ("learning_rate", "Learning rate"),
    ("grad_norm", "Gradient norm (before clipping)"),
    ("memory", "Peak memory"),
    ("throughput", "Throughput"),
    ("rouge", "ROUGE before vs after training"),
];

#[test]
fn compares_runs_in_one_self_contained_page() {
    let runs = runs();
    let out = runs.root.join("compare/lora-vs-full.html");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let printed = ferrotune_ok(&["report", s(&runs.lora), s(&runs.full), "--out", s(&out)]);
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), s(&out));
    let html = std::fs::read_to_string(&out).unwrap();

    // Nothing outside the file is needed: no scripts, stylesheets or remote resources.
    for outside in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
    ] {
        assert!(!html.contains(outside), "the page contains {outside}");
    }
    // Every chart is inlined and written beside the page, the same bytes in both.
    let inline = images(&html);
    assert_eq!(inline.len(), CHARTS.len());
    for ((name, title), svg) in CHARTS.iter().zip(&inline) {
        let file = std::fs::read(out.parent().unwrap().join(format!("plots/{name}.svg"))).unwrap();
        assert_eq!(&file, svg, "{name}");
        let svg = String::from_utf8(file).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let texts = svg_texts(&svg);
        assert_eq!(texts[0], *title, "{name}");
        assert!(html.contains(&format!("alt=\"{title}\"")), "{title}");
        if *name != "rouge" {
            // Both runs are overlaid in their colours, each curve with its legend entry (the
            // label escaped for SVG).
            assert!(
                texts.contains(&"lora &lt;b&gt;&amp;amp;"),
                "{name}: {texts:?}"
            );
            assert!(texts.contains(&"full"), "{name}");
            for colour in ["#1F77B4", "#D62728"] {
                let curve = format!("stroke=\"{colour}\" stroke-width=\"2\"");
                assert_eq!(svg.matches(&curve).count(), 2, "{name}: curve and legend");
            }
        }
    }
    let rouge = String::from_utf8(inline[5].clone()).unwrap();
    let texts = svg_texts(&rouge);
    for label in [
        "untuned (all runs)",
        "full tuned",
        "ROUGE-1",
        "ROUGE-Lsum",
        "F-measure",
    ] {
        assert!(texts.contains(&label), "{label} in {texts:?}");
    }

    // Text from the runs is escaped: the directory name and the markup row.
    assert!(
        html.contains("Run: lora &lt;b&gt;&amp;amp;</h2>"),
        "escaped run label"
    );
    assert!(!html.contains("<b>") && !html.contains("<script"));
    assert!(
        html.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; &lt;b&gt;bold")
    );

    // Each run's predictions, beside the references and the untuned model's.
    let tuned = read_predictions(&runs.full.join("final_model/predictions.jsonl")).unwrap();
    let untuned = read_predictions(&runs.full.join("base_eval/predictions.jsonl")).unwrap();
    assert_eq!(tuned.len(), 7);
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#x27;")
            .replace('/', "&#x2f;")
    };
    let row = |i: usize| {
        format!(
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            escape(&tuned[i].dialogue),
            escape(&tuned[i].reference),
            escape(&tuned[i].prediction),
            escape(&untuned[i].prediction)
        )
    };
    for i in 0..tuned.len() {
        assert!(html.contains(&row(i)), "sample {i}:\n{}", row(i));
    }

    // The numbers, config and hardware of each run.
    let results =
        ferrotune::eval::results::evaluate_file(&runs.full.join("final_model/predictions.jsonl"))
            .unwrap();
    assert!(html.contains(&format!(
        "<td class=\"num\">{:.4}</td>",
        results.plain.rouge1
    )));
    let metrics = ferrotune::train::metrics::read(&runs.full.join("metrics.jsonl")).unwrap();
    assert!(html.contains(&format!("{:.4}", metrics.last().unwrap().loss)));
    let config = std::fs::read_to_string(runs.full.join("config.yaml")).unwrap();
    assert!(html.contains(&escape(&config)), "config.yaml shown");
    assert!(
        html.contains("<td>full</td>") && html.contains("<td>lora</td>"),
        "modes"
    );
    let info =
        ferrotune::report::run_info::RunInfo::read(&runs.full.join("run_info.json")).unwrap();
    assert!(html.contains(&format!("<td>{}</td>", escape(&info.device))));
    assert!(html.contains(&format!("{} logical cores", info.host.cpu_cores)));
}

#[test]
fn one_run_writes_into_its_directory() {
    let runs = runs();
    let out = ferrotune_ok(&["report", s(&runs.full), "--samples", "2"]);
    let page = runs.full.join("report.html");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), s(&page));
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(images(&html).len(), CHARTS.len());
    assert!(html.contains("<title>ferrotune report: full</title>"));
    assert!(html.contains("The first 2 of 7 evaluation dialogues."));
    let rouge = std::fs::read_to_string(runs.full.join("plots/rouge.svg")).unwrap();
    let texts = svg_texts(&rouge);
    assert!(
        texts.contains(&"untuned") && texts.contains(&"tuned"),
        "{texts:?}"
    );
}

#[test]
fn runs_from_before_memory_was_recorded_still_report() {
    let runs = runs();
    let old = runs.root.join("old");
    std::fs::create_dir_all(old.join("base_eval")).unwrap();
    let records = ferrotune::train::metrics::read(&runs.full.join("metrics.jsonl")).unwrap();
    let mut lines = String::new();
    for mut r in records {
        r.peak_memory_bytes = None;
        lines.push_str(&serde_json::to_string(&r).unwrap());
        lines.push('\n');
    }
    assert!(!lines.contains("peak_memory"));
    std::fs::write(old.join("metrics.jsonl"), lines).unwrap();
    for file in ["eval_results.json", "predictions.jsonl"] {
        std::fs::copy(
            runs.full.join("base_eval").join(file),
            old.join("base_eval").join(file),
        )
        .unwrap();
    }
    let out = ferrotune_ok(&["report", s(&old)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Peak memory: not drawn"));
    let html = std::fs::read_to_string(old.join("report.html")).unwrap();
    assert_eq!(images(&html).len(), CHARTS.len() - 1);
    assert!(
        html.contains(
            "Peak memory: not drawn, no run recorded peak_memory_bytes in metrics.jsonl."
        )
    );
    assert!(html.contains("not recorded (no run_info.json)"));
    assert!(html.contains("No config.yaml."));
}

#[test]
fn unreadable_directories_are_named() {
    let runs = runs();
    let error = |args: &[&str]| {
        let out = ferrotune(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = runs.root.join("no-such-run");
    assert!(
        error(&["report", s(&missing)])
            .contains(&format!("{}: no such directory", missing.display()))
    );

    let empty = runs.root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let message = error(&["report", s(&empty)]);
    assert!(
        message.contains("not a ferrotune output directory"),
        "{message}"
    );

    let broken = runs.root.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let good = std::fs::read_to_string(runs.full.join("metrics.jsonl")).unwrap();
    std::fs::write(
        broken.join("metrics.jsonl"),
        format!("{good}{{\"step\": \"three\"}}\n"),
    )
    .unwrap();
    let message = error(&["report", s(&broken)]);
    assert!(
        message.contains(&format!(
            "{}:7: not a step record",
            broken.join("metrics.jsonl").display()
        )),
        "{message}"
    );

    assert!(error(&["report"]).contains("OUTPUT_DIR"));
}
