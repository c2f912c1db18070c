//! The report in a real browser: headless Chromium (Debian's `chromium`) loads a two-run
//! report, its DOM has the expected titles and inline images, every image decodes, and the
//! screenshot shows a drawn chart (axes, text, both runs' colours) where each image is laid out.

mod report_common;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use report_common::{TinyRun, chromium, ferrotune_ok, repo_root};
use serde::Deserialize;

/// The browser window (and screenshot) size: tall enough for every chart.
const WINDOW: (u32, u32) = (1400, 2000);
/// The runs' colours (the report's first two), as RGB.
const RUN_COLOURS: [[u8; 3]; 2] = [[31, 119, 180], [214, 39, 40]];

/// Runs headless Chromium on `page` with `extra` flags and a fresh profile; returns stdout.
fn chromium_run(profile: &Path, page: &Path, extra: &[&str]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            &format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("Chromium runs");
    assert!(
        out.status.success(),
        "chromium failed on {}:\n{}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 DOM")
}

/// Where the browser laid out one chart image, and whether it decoded.
#[derive(Debug, Deserialize)]
struct Placed {
    alt: String,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    natural: u32,
}

/// Reports the layout of the page's chart images: a copy of the page with a script appended
/// (the page itself has none) writes them into the DOM once everything has loaded.
fn layout(profile: &Path, page: &Path) -> Vec<Placed> {
    const PROBE: &str = r#"<script>
window.addEventListener("load", () => {
  const placed = [...document.querySelectorAll("figure img")].map(img => {
    const r = img.getBoundingClientRect();
    return {alt: img.alt, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height,
            natural: img.naturalWidth};
  });
  const out = document.createElement("pre");
  out.id = "layout";
  out.hidden = true;
  out.textContent = JSON.stringify(placed);
  document.body.appendChild(out);
});
</script></body>"#;
    let html = std::fs::read_to_string(page).unwrap();
    assert_eq!(html.matches("</body>").count(), 1);
    let probe = page.with_file_name("layout-probe.html");
    std::fs::write(&probe, html.replace("</body>", PROBE)).unwrap();
    let dom = chromium_run(
        profile,
        &probe,
        &["--virtual-time-budget=5000", "--dump-dom"],
    );
    let start = dom
        .find("<pre id=\"layout\" hidden=\"\">")
        .expect("the probe ran")
        + 27;
    let json = &dom[start..start + dom[start..].find("</pre>").unwrap()];
    serde_json::from_str(&json.replace("&amp;", "&")).unwrap()
}

/// An RGB screenshot.
struct Screenshot {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Screenshot {
    fn read(path: &Path) -> Self {
        let mut decoder = png::Decoder::new(BufReader::new(File::open(path).unwrap()));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let channels = info.color_type.samples();
        assert!(channels >= 3, "{:?}", info.color_type);
        let rgb = buf[..info.buffer_size()]
            .chunks(channels)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        Self {
            width: info.width as usize,
            height: info.height as usize,
            rgb,
        }
    }

    /// The pixels of a rectangle (clipped to the image).
    fn region(&self, x: usize, y: usize, w: usize, h: usize) -> Vec<[u8; 3]> {
        let mut out = Vec::new();
        for row in y..(y + h).min(self.height) {
            for col in x..(x + w).min(self.width) {
                let i = (row * self.width + col) * 3;
                out.push([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]);
            }
        }
        out
    }
}

fn near(p: [u8; 3], c: [u8; 3], tolerance: i32) -> bool {
    p.iter()
        .zip(c)
        .all(|(&a, b)| (i32::from(a) - i32::from(b)).abs() <= tolerance)
}

fn train_two_runs(root: &Path) -> [PathBuf; 2] {
    let rows = repo_root().join("trainer/tests/fixtures/data/rows.jsonl");
    ["lora", "full"].map(|mode| {
        let dir = root.join(format!("{mode}-run"));
        TinyRun {
            mode,
            steps: 6,
            save_steps: 0,
            eval_rows: &rows,
        }
        .train(&dir);
        dir
    })
}

#[test]
fn chromium_shows_every_chart() {
    let chromium_binary = chromium(); // fails first, naming the package, when it is missing
    assert!(chromium_binary.exists());
    let tmp = tempfile::tempdir().unwrap();
    let [lora, full] = train_two_runs(tmp.path());
    let page = tmp.path().join("report/report.html");
    std::fs::create_dir_all(page.parent().unwrap()).unwrap();
    ferrotune_ok(&[
        "report",
        lora.to_str().unwrap(),
        full.to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ]);
    let titles = [
        "Training loss",
        "Learning rate",
        "Gradient norm (before clipping)",
        "Peak memory",
        "Throughput",
        "ROUGE before vs after training",
    ];

    // The DOM as the browser built it.
    let dom = chromium_run(&tmp.path().join("profile-dom"), &page, &["--dump-dom"]);
    assert!(dom.contains("<title>ferrotune report: lora-run vs full-run</title>"));
    assert!(dom.contains("<h1>ferrotune report: lora-run vs full-run</h1>"));
    assert_eq!(
        dom.matches("<img src=\"data:image/svg+xml;base64,").count(),
        titles.len()
    );
    for title in titles {
        assert!(dom.contains(&format!("alt=\"{title}\"")), "{title}");
        assert!(
            dom.contains(&format!("<figcaption>{title} (plots/")),
            "{title}"
        );
    }
    for heading in ["Summary", "Charts"] {
        assert!(dom.contains(&format!(">{heading}</h2>")), "{heading}");
    }
    for run in ["lora-run", "full-run"] {
        assert!(dom.contains(&format!("</span>Run: {run}</h2>")), "{run}");
    }
    assert!(dom.contains("<th>Tuned model</th>") && dom.contains("<th>Untuned model</th>"));

    // Where each chart is, and that each decoded at its size.
    let placed = layout(&tmp.path().join("profile-layout"), &page);
    assert_eq!(
        placed.iter().map(|p| p.alt.as_str()).collect::<Vec<_>>(),
        titles
    );
    for p in &placed {
        assert_eq!((p.w, p.h, p.natural), (640.0, 400.0, 640), "{}", p.alt);
        assert!(
            p.y + p.h <= f64::from(WINDOW.1),
            "{} is below the screenshot",
            p.alt
        );
    }

    // The screenshot of the page itself: each chart region is drawn, in both runs' colours.
    let shot_path = tmp.path().join("report.png");
    chromium_run(
        &tmp.path().join("profile-shot"),
        &page,
        &[&format!("--screenshot={}", shot_path.display())],
    );
    let shot = Screenshot::read(&shot_path);
    assert_eq!(
        (shot.width, shot.height),
        (WINDOW.0 as usize, WINDOW.1 as usize)
    );
    for p in &placed {
        let pixels = shot.region(p.x as usize, p.y as usize, p.w as usize, p.h as usize);
        assert_eq!(pixels.len(), 640 * 400, "{}", p.alt);
        let drawn = pixels
            .iter()
            .filter(|&&px| !near(px, [255, 255, 255], 8))
            .count();
        let dark = pixels.iter().filter(|&&px| near(px, [0, 0, 0], 80)).count();
        let fraction = drawn as f64 / pixels.len() as f64;
        assert!(
            (0.02..0.6).contains(&fraction),
            "{}: {:.1} % of the pixels drawn",
            p.alt,
            fraction * 100.0
        );
        assert!(dark > 400, "{}: {dark} dark pixels (axes, text)", p.alt);
        // Each run's colour is there (at least its legend key: the runs' learning-rate curves
        // coincide), and together they draw more than the legend.
        let hits = RUN_COLOURS.map(|c| pixels.iter().filter(|&&px| near(px, c, 30)).count());
        assert!(
            hits.iter().all(|&n| n >= 30),
            "{}: run colours {hits:?}",
            p.alt
        );
        assert!(
            hits.iter().sum::<usize>() > 400,
            "{}: run colours {hits:?}",
            p.alt
        );
    }
}
