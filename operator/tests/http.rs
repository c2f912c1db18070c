//! The operator's HTTP endpoints, served on a real socket and read as Prometheus and a kubelet
//! probe would read them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrotune_crds::Phase;
use ferrotune_operator::http::{Health, serve_on};
use ferrotune_operator::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 GET: the status code and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let code = head.split_whitespace().nth(1).expect("a status code");
    (code.parse().expect("a numeric status"), body.to_string())
}

#[tokio::test]
async fn metrics_count_reconciles_and_phases_and_readiness_follows_the_controller() {
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    tokio::spawn(serve_on(listener, health));

    assert_eq!(get(addr, "/healthz").await, (200, "ok".into()));
    assert_eq!(
        get(addr, "/readyz").await.0,
        503,
        "not ready before the watches run"
    );
    ready.store(true, Ordering::Relaxed);
    assert_eq!(get(addr, "/readyz").await, (200, "ready".into()));

    metrics.reconciled(0.002);
    metrics.reconciled(0.004);
    metrics.failed("Kube");
    metrics.phase("ns/a", Some(Phase::Running));
    metrics.phase("ns/b", Some(Phase::Running));
    metrics.phase("ns/b", Some(Phase::Succeeded));
    metrics.phase("ns/c", Some(Phase::Failed));
    metrics.phase("ns/c", None);
    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    let value = |series: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{body}"))
    };
    assert_eq!(value("ferrotune_operator_reconciles_total"), 2.0);
    assert_eq!(
        value("ferrotune_operator_reconcile_errors_total{error=\"Kube\"}"),
        1.0
    );
    assert_eq!(
        value("ferrotune_operator_reconcile_duration_seconds_count"),
        2.0
    );
    assert_eq!(
        value("ferrotune_operator_trainingjobs{phase=\"Running\"}"),
        1.0
    );
    assert_eq!(
        value("ferrotune_operator_trainingjobs{phase=\"Succeeded\"}"),
        1.0
    );
    assert_eq!(
        value("ferrotune_operator_trainingjobs{phase=\"Failed\"}"),
        0.0
    );
    assert_eq!(get(addr, "/nothing").await.0, 404);
}
