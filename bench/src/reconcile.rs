//! `operator-reconcile`: reconcile latency and operator memory with N TrainingJobs, against
//! kube's real client over an in-process mock API server that answers every call at once
//! (lists empty, creates and patches echoed). Prints a markdown table.
//!
//! Each TrainingJob is reconciled twice: the first pass creates its attempt (lists, status, three
//! creates, an event); the second observes it (the mock's lists stay empty, so it is the creating
//! pass again: the worst case).

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use ferrotune_crds::TrainingJob;
use ferrotune_operator::controller::{Context, reconcile};
use ferrotune_operator::metrics::Metrics;
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// Reconcile latency and memory with many TrainingJobs.
#[derive(Debug, Parser)]
struct Args {
    /// TrainingJobs to reconcile.
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// Reconciles in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

fn training_job(i: usize) -> TrainingJob {
    serde_json::from_value(json!({
        "apiVersion": "ferrotune.dev/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": format!("job-{i}"), "namespace": "bench",
            "uid": format!("00000000-0000-4000-8000-{i:012}"), "generation": 1},
        "spec": {
            "image": "ferrotune:cpu",
            "parallelism": {"nodes": 2, "procsPerNode": 4},
            "training": {"model": {"hub": "meta-llama/Llama-3.2-3B-Instruct"},
                         "data": {"train": "/data/train.jsonl"}},
            "storage": {"output": {"claimName": "runs", "mountPath": "/runs"}},
        }
    }))
    .expect("a valid TrainingJob")
}

/// Answers every request at once, as an API server that accepts everything.
async fn serve(mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>) {
    while let Some((request, reply)) = handle.next_request().await {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if method == http::Method::GET {
            body = json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []});
        } else if path.ends_with("/status") {
            let name = path.rsplit('/').nth(1).unwrap_or("job");
            body["metadata"] = json!({"name": name, "namespace": "bench"});
            body["spec"] = serde_json::to_value(training_job(0).spec).unwrap();
        }
        let out = serde_json::to_vec(&body).unwrap();
        reply.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(out))
                .unwrap(),
        );
    }
}

/// Resident set size now, from `/proc/self/statm` (pages × page size).
fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    pages * page / (1024.0 * 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rss_start = rss_mib();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(serve(handle));
    let ctx = Arc::new(Context::new(
        Client::new(service, "bench"),
        Arc::new(Metrics::default()),
        None,
    ));
    let jobs: Vec<Arc<TrainingJob>> = (0..args.jobs).map(|i| Arc::new(training_job(i))).collect();
    let rss_jobs = rss_mib();
    let mut latencies = Vec::with_capacity(jobs.len() * 2);
    let started = Instant::now();
    for pass in 0..2 {
        for chunk in jobs.chunks(args.concurrency) {
            let runs = chunk.iter().map(|tj| {
                let (tj, ctx) = (tj.clone(), ctx.clone());
                async move {
                    let t = Instant::now();
                    reconcile(tj, ctx)
                        .await
                        .map(|_| t.elapsed().as_secs_f64() * 1e3)
                }
            });
            for r in futures::future::join_all(runs).await {
                latencies.push(r.map_err(|e| anyhow::anyhow!("pass {pass}: {e}"))?);
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    println!(
        "| TrainingJobs | reconciles | concurrency | p50 ms | p99 ms | max ms | reconciles/s | RSS MiB: start / jobs built / after |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.0} | {:.1} / {:.1} / {:.1} |",
        args.jobs,
        latencies.len(),
        args.concurrency,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0),
        latencies.len() as f64 / wall,
        rss_start,
        rss_jobs,
        rss_mib()
    );
    Ok(())
}
