//! `ferrotune-operator`: run the controller, render a manifest's objects, or print the CRD.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use ferrotune_operator::{controller, http, leader, metrics::Metrics, render};

/// The ferrotune Kubernetes operator: turns TrainingJobs (ferrotune.dev/v1alpha1) into a headless
/// Service and an Indexed Job per attempt, restarts failed attempts from the newest checkpoint,
/// and reports progress in each TrainingJob's status.
#[derive(Debug, Parser)]
#[command(name = "ferrotune-operator", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller against the cluster (in-cluster config, or KUBECONFIG).
    Run {
        /// Watch TrainingJobs in this namespace; repeatable. All namespaces when not given.
        #[arg(long = "namespace", value_name = "NS")]
        namespaces: Vec<String>,
        /// Where /metrics, /healthz and /readyz are served.
        #[arg(long, default_value = "0.0.0.0:8080")]
        metrics_addr: SocketAddr,
        /// Reconcile only while holding a Lease, so several replicas can run (one leads).
        #[arg(long)]
        leader_election: bool,
        /// Name of the Lease, in POD_NAMESPACE.
        #[arg(long, default_value = "ferrotune-operator")]
        lease_name: String,
        /// Namespace of the Lease (set by the chart through the downward API).
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        pod_namespace: String,
        /// This replica's identity in the Lease and in events.
        #[arg(long, env = "POD_NAME")]
        pod_name: Option<String>,
    },
    /// Print the objects the controller would create for a TrainingJob manifest (like `helm
    /// template`): the headless Service, the ConfigMap and the Indexed Job.
    Render {
        /// The TrainingJob manifest.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
        /// Render this attempt's objects (attempts count from 1).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        attempt: u32,
    },
    /// Print the TrainingJob CRD as YAML.
    Crd,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crd => print!("{}", ferrotune_crds::crd_yaml()),
        Command::Render { file, attempt } => {
            let job = render::load(&file)?;
            print!("{}", render::render(&job, attempt));
        }
        Command::Run {
            namespaces,
            metrics_addr,
            leader_election,
            lease_name,
            pod_namespace,
            pod_name,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let client = kube::Client::try_default().await?;
                let metrics = Arc::new(Metrics::default());
                let ready = Arc::new(AtomicBool::new(false));
                let health = http::Health { metrics: metrics.clone(), ready: ready.clone() };
                let server = tokio::spawn(http::serve(metrics_addr, health));
                let lost = if leader_election {
                    let me = pod_name.clone().unwrap_or_else(|| format!("pid-{}", std::process::id()));
                    // A standby is ready: it serves and waits.
                    ready.store(true, Ordering::Relaxed);
                    Some(leader::acquire(client.clone(), &pod_namespace, &lease_name, &me).await?)
                } else {
                    None
                };
                ready.store(true, Ordering::Relaxed);
                let ctx = Arc::new(controller::Context::new(client, metrics, pod_name));
                let controller = controller::run(ctx, &namespaces);
                tokio::select! {
                    () = controller => Ok(()),
                    served = server => Err(anyhow::anyhow!("HTTP server stopped: {:?}", served?.err())),
                    _ = async { match lost { Some(handle) => { let _ = handle.await; } None => std::future::pending().await } } => {
                        Err(anyhow::anyhow!("lost the leader lease {pod_namespace}/{lease_name}; exiting so a fresh replica can take over"))
                    }
                }
            })?;
        }
    }
    Ok(())
}
