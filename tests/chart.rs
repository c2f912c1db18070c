//! The Helm chart (`charts/ferrotune`), linted and rendered by Helm's own Go SDK through
//! helm-python-sdk (no helm binary): the objects for default values, for two replicas and for a
//! list of watched namespaces; RBAC that is exactly what the operator does; a locked-down pod;
//! the CRD copy; and the example TrainingJobs against the CRD's openAPIV3Schema.

mod common;

use common::{repo_root, test_python};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const RELEASE: &str = "ft";
const NAMESPACE: &str = "ferrotune-system";
/// The release's full name: release name + chart name.
const FULLNAME: &str = "ft-ferrotune";

fn chart_dir() -> PathBuf {
    repo_root().join("charts/ferrotune")
}

/// The Python that has the test requirements: env FERROTUNE_PYTHON, else the repository's `.venv`.
fn python() -> PathBuf {
    let path = test_python();
    assert!(
        path.exists(),
        "{} is missing: create the test environment with `python3 -m venv .venv && \
         .venv/bin/pip install -r scripts/test-requirements.txt` at the repository root (or run \
         scripts/test.sh), or set FERROTUNE_PYTHON to a Python that has helm-python-sdk, \
         jsonschema and pyyaml",
        path.display()
    );
    path
}

/// Runs `tests/chart/helm.py` with `args` and parses the JSON it prints.
fn helm_py(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("chart/helm.py");
    let out = Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .expect("the test Python runs");
    assert!(
        out.status.success(),
        "helm.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "helm.py {args:?} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// What the chart renders for `values`.
struct Rendered {
    objects: Vec<Value>,
    notes: String,
}

impl Rendered {
    fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .objects
            .iter()
            .map(|o| {
                format!(
                    "{} {}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["namespace"].as_str().unwrap_or("-"),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        kinds.sort();
        kinds
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The one object of `kind`, failing when there are none or several.
    fn one(&self, kind: &str) -> &Value {
        let found = self.of_kind(kind);
        assert_eq!(
            found.len(),
            1,
            "expected one {kind}, rendered: {:#?}",
            self.kinds()
        );
        found[0]
    }

    fn container(&self) -> &Value {
        let containers = &self.one("Deployment")["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers.as_array().map(Vec::len),
            Some(1),
            "the Deployment has one container: {containers:#}"
        );
        &containers[0]
    }

    fn args(&self) -> Vec<String> {
        strings(&self.container()["args"])
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("expected a string, got {s}"))
                .to_string()
        })
        .collect()
}

fn try_render(values: Value) -> Result<Rendered, String> {
    let chart = chart_dir();
    let out = helm_py(&[
        "render",
        chart.to_str().unwrap(),
        RELEASE,
        NAMESPACE,
        &values.to_string(),
    ]);
    if let Some(err) = out.get("error") {
        return Err(err.as_str().unwrap().to_string());
    }
    let objects = out["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["object"].clone())
        .collect();
    Ok(Rendered {
        objects,
        notes: out["notes"].as_str().unwrap_or_default().to_string(),
    })
}

fn render(values: Value) -> Rendered {
    try_render(values.clone()).unwrap_or_else(|e| panic!("rendering with {values} failed: {e}"))
}

fn expected(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// (apiGroup, resource, verb) for every verb a rule grants.
type Grant = (String, String, String);

fn grants(rules: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules is a list") {
        for key in ["nonResourceURLs", "resourceNames"] {
            assert!(rule.get(key).is_none(), "unexpected {key} in rule {rule:#}");
        }
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

fn grant_set(list: &[(&str, &str, &[&str])]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resource, verbs) in list {
        for verb in *verbs {
            out.insert((group.to_string(), resource.to_string(), verb.to_string()));
        }
    }
    out
}

/// What the operator does in each namespace it watches, and nothing else.
fn operator_grants() -> BTreeSet<Grant> {
    grant_set(&[
        ("ferrotune.dev", "trainingjobs", &["get", "list", "watch"]),
        (
            "ferrotune.dev",
            "trainingjobs/status",
            &["get", "patch", "update"],
        ),
        ("ferrotune.dev", "trainingjobs/finalizers", &["update"]),
        (
            "batch",
            "jobs",
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        (
            "",
            "services",
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        (
            "",
            "configmaps",
            &["get", "list", "watch", "create", "delete"],
        ),
        ("", "pods", &["get", "list", "watch"]),
        ("", "pods/log", &["get"]),
        ("events.k8s.io", "events", &["create", "patch"]),
    ])
}

fn lease_grants() -> BTreeSet<Grant> {
    grant_set(&[(
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    )])
}

/// Every role's rules: no wildcards, no Secrets, nothing beyond the operator's
/// needs; returns (kind, namespace, name, grants) of each.
fn roles(r: &Rendered) -> Vec<(String, String, String, BTreeSet<Grant>)> {
    let mut out = Vec::new();
    for o in r
        .of_kind("ClusterRole")
        .into_iter()
        .chain(r.of_kind("Role"))
    {
        let kind = o["kind"].as_str().unwrap().to_string();
        let name = o["metadata"]["name"].as_str().unwrap().to_string();
        let ns = o["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let g = grants(&o["rules"]);
        for (group, resource, verb) in &g {
            let at = format!("{kind} {ns}/{name}: ({group:?}, {resource}, {verb})");
            assert!(
                group != "*" && resource != "*" && verb != "*",
                "{at}: wildcard"
            );
            assert!(
                !resource.starts_with("secrets"),
                "{at}: the operator reads no Secrets (pods take the HF token from one directly)"
            );
            assert!(
                !["escalate", "bind", "impersonate", "deletecollection"].contains(&verb.as_str()),
                "{at}: a verb the operator never uses"
            );
        }
        out.push((kind, ns, name, g));
    }
    out
}

fn binding_subject_and_role(binding: &Value) -> (String, String, String, String) {
    let subjects = binding["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 1, "one subject: {binding:#}");
    let s = &subjects[0];
    assert_eq!(s["kind"], "ServiceAccount", "{binding:#}");
    (
        s["name"].as_str().unwrap().to_string(),
        s["namespace"].as_str().unwrap().to_string(),
        binding["roleRef"]["kind"].as_str().unwrap().to_string(),
        binding["roleRef"]["name"].as_str().unwrap().to_string(),
    )
}

fn chart_app_version() -> String {
    let chart = std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap();
    chart
        .lines()
        .find_map(|l| l.strip_prefix("appVersion:"))
        .expect("Chart.yaml has appVersion")
        .trim()
        .trim_matches('"')
        .to_string()
}

#[test]
fn lint_is_clean() {
    let chart = chart_dir();
    for values in [
        json!({}),
        json!({"replicas": 2, "watchNamespaces": ["a", "b"], "metrics": {"port": 8080, "serviceMonitor": {"enabled": true}}}),
    ] {
        let out = helm_py(&["lint", chart.to_str().unwrap(), &values.to_string()]);
        assert_eq!(out["errors"], json!([]), "helm lint errors with {values}");
        // Severity 1 is INFO; the only one allowed is the missing icon (the project has none).
        let findings: Vec<&Value> = out["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| !(m["severity"] == 1 && m["error"] == "icon is recommended"))
            .collect();
        assert!(
            findings.is_empty(),
            "helm lint (strict) with {values} reports: {findings:#?}"
        );
    }
}

#[test]
fn default_values_render_the_operator_cluster_wide() {
    let r = render(json!({}));
    let ns = NAMESPACE;
    assert_eq!(
        r.kinds(),
        expected(&[
            &format!("ClusterRole -/{FULLNAME}"),
            &format!("ClusterRoleBinding -/{FULLNAME}"),
            &format!("Deployment {ns}/{FULLNAME}"),
            &format!("Role {ns}/{FULLNAME}-leader-election"),
            &format!("RoleBinding {ns}/{FULLNAME}-leader-election"),
            &format!("Service {ns}/{FULLNAME}-metrics"),
            &format!("ServiceAccount {ns}/{FULLNAME}"),
        ]),
        "objects rendered with default values"
    );

    let deploy = r.one("Deployment");
    assert_eq!(deploy["spec"]["replicas"], 1, "default replicas");
    let pod = &deploy["spec"]["template"];
    assert_eq!(pod["spec"]["serviceAccountName"], FULLNAME);
    let selector = &deploy["spec"]["selector"]["matchLabels"];
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(
            &pod["metadata"]["labels"][k], v,
            "pod label {k} matches the Deployment's selector"
        );
    }

    let c = r.container();
    assert_eq!(
        c["image"],
        format!("ghcr.io/ferrotune/ferrotune:{}", chart_app_version()),
        "image defaults to the chart's appVersion"
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        strings(&c["command"]),
        ["/usr/local/bin/ferrotune-operator"]
    );
    assert_eq!(
        r.args(),
        ["run", "--metrics-addr", "0.0.0.0:8080"],
        "one replica: no --leader-election, no --namespace (all namespaces)"
    );

    let env = c["env"].as_array().unwrap();
    let field_ref = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("env {name} missing: {env:#?}"))["valueFrom"]["fieldRef"]
            ["fieldPath"]
            .clone()
    };
    assert_eq!(field_ref("POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(field_ref("POD_NAME"), "metadata.name");
    let rust_log = env.iter().find(|e| e["name"] == "RUST_LOG");
    assert_eq!(rust_log.map(|e| &e["value"]), Some(&json!("info")));

    assert_eq!(
        c["ports"],
        json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(c["resources"]["limits"]["memory"], "256Mi");

    let svc = r.one("Service");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}])
    );
    assert_eq!(
        &svc["spec"]["selector"], selector,
        "Service selects the pods"
    );

    let (sa, sa_ns, kind, role) = binding_subject_and_role(r.one("ClusterRoleBinding"));
    assert_eq!(
        (sa.as_str(), sa_ns.as_str(), kind.as_str(), role.as_str()),
        (FULLNAME, NAMESPACE, "ClusterRole", FULLNAME)
    );
    assert!(
        r.of_kind("ServiceMonitor").is_empty(),
        "no ServiceMonitor unless metrics.serviceMonitor.enabled"
    );
    assert!(
        r.notes.contains("kubectl apply -f configs/trainingjobs/")
            && r.notes.contains("kubectl get tj"),
        "NOTES.txt says how to apply an example:\n{}",
        r.notes
    );
}

#[test]
fn two_replicas_elect_a_leader() {
    let r = render(json!({"replicas": 2}));
    assert_eq!(r.one("Deployment")["spec"]["replicas"], 2);
    assert_eq!(
        r.args(),
        [
            "run",
            "--metrics-addr",
            "0.0.0.0:8080",
            "--leader-election",
            "--lease-name",
            FULLNAME
        ]
    );
    // The same objects as with one replica.
    assert_eq!(r.kinds(), render(json!({})).kinds());

    // One replica with leader election asked for, and a lease name of one's own.
    let r = render(json!({"leaderElection": {"enabled": true, "leaseName": "my-lease"}}));
    assert_eq!(r.one("Deployment")["spec"]["replicas"], 1);
    assert_eq!(
        r.args(),
        [
            "run",
            "--metrics-addr",
            "0.0.0.0:8080",
            "--leader-election",
            "--lease-name",
            "my-lease"
        ]
    );
}

#[test]
fn watched_namespaces_get_roles_and_nothing_cluster_wide() {
    let r = render(json!({"watchNamespaces": ["a", "b"]}));
    let ns = NAMESPACE;
    assert_eq!(
        r.kinds(),
        expected(&[
            &format!("Deployment {ns}/{FULLNAME}"),
            &format!("Role a/{FULLNAME}"),
            &format!("Role b/{FULLNAME}"),
            &format!("Role {ns}/{FULLNAME}-leader-election"),
            &format!("RoleBinding a/{FULLNAME}"),
            &format!("RoleBinding b/{FULLNAME}"),
            &format!("RoleBinding {ns}/{FULLNAME}-leader-election"),
            &format!("Service {ns}/{FULLNAME}-metrics"),
            &format!("ServiceAccount {ns}/{FULLNAME}"),
        ]),
        "objects rendered with watchNamespaces [a, b]"
    );
    assert_eq!(
        r.args(),
        [
            "run",
            "--namespace",
            "a",
            "--namespace",
            "b",
            "--metrics-addr",
            "0.0.0.0:8080"
        ]
    );
    for binding in r.of_kind("RoleBinding") {
        let (sa, sa_ns, kind, role) = binding_subject_and_role(binding);
        let at = format!("RoleBinding {}", binding["metadata"]["namespace"]);
        assert_eq!((sa.as_str(), sa_ns.as_str()), (FULLNAME, NAMESPACE), "{at}");
        assert_eq!(kind, "Role", "{at}");
        assert_eq!(role, binding["metadata"]["name"], "{at} binds its own Role");
    }
}

#[test]
fn rbac_is_exactly_what_the_operator_does() {
    let cases = [
        (json!({}), vec![String::new()]),
        (json!({"replicas": 3}), vec![String::new()]),
        (
            json!({"watchNamespaces": ["a", "b"]}),
            vec!["a".to_string(), "b".to_string()],
        ),
    ];
    for (values, watched) in cases {
        let r = render(values.clone());
        let roles = roles(&r);
        let mut operator_scopes = Vec::new();
        for (kind, ns, name, g) in &roles {
            let at = format!("{values}: {kind} {ns}/{name}");
            if name.ends_with("-leader-election") {
                assert_eq!(kind, "Role", "{at}: leases are namespaced");
                assert_eq!(ns, NAMESPACE, "{at}: leases only in the release namespace");
                assert_eq!(g, &lease_grants(), "{at}: lease verbs");
            } else {
                assert_eq!(g, &operator_grants(), "{at}: the operator's verbs, exactly");
                operator_scopes.push(ns.clone());
            }
        }
        operator_scopes.sort();
        assert_eq!(
            operator_scopes, watched,
            "{values}: where the operator may act"
        );
        assert_eq!(
            roles
                .iter()
                .filter(|(_, _, name, _)| name.ends_with("-leader-election"))
                .count(),
            1,
            "{values}: one lease Role"
        );
        // Every binding binds the operator's ServiceAccount, in the release namespace.
        for b in r
            .of_kind("RoleBinding")
            .into_iter()
            .chain(r.of_kind("ClusterRoleBinding"))
        {
            let (sa, sa_ns, _, role) = binding_subject_and_role(b);
            assert_eq!(
                (sa.as_str(), sa_ns.as_str()),
                (FULLNAME, NAMESPACE),
                "{b:#}"
            );
            assert!(
                roles.iter().any(|(_, _, name, _)| *name == role),
                "{values}: binding to a role the chart does not render: {b:#}"
            );
        }
    }
}

#[test]
fn the_pod_is_locked_down() {
    for values in [json!({}), json!({"replicas": 2, "watchNamespaces": ["a"]})] {
        let r = render(values.clone());
        let pod = &r.one("Deployment")["spec"]["template"]["spec"];
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{values}: pod runAsNonRoot");
        assert_eq!(psc["runAsUser"], 65532, "{values}: pod runAsUser");
        assert_eq!(psc["runAsGroup"], 65532, "{values}: pod runAsGroup");
        assert_eq!(
            psc["seccompProfile"]["type"], "RuntimeDefault",
            "{values}: pod seccomp"
        );
        assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());
        let sc = &r.container()["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true, "{values}: container runAsNonRoot");
        assert_eq!(sc["runAsUser"], 65532, "{values}: container runAsUser");
        assert_eq!(
            sc["readOnlyRootFilesystem"], true,
            "{values}: readOnlyRootFilesystem"
        );
        assert_eq!(
            sc["allowPrivilegeEscalation"], false,
            "{values}: allowPrivilegeEscalation"
        );
        assert_eq!(sc["privileged"], false, "{values}: privileged");
        assert_eq!(
            sc["capabilities"],
            json!({"drop": ["ALL"]}),
            "{values}: every capability dropped, none added"
        );
        assert_eq!(
            sc["seccompProfile"]["type"], "RuntimeDefault",
            "{values}: container seccomp"
        );
        // The only writable path is an emptyDir at /tmp.
        assert_eq!(
            r.container()["volumeMounts"],
            json!([{"name": "tmp", "mountPath": "/tmp"}])
        );
        assert_eq!(pod["volumes"][0]["name"], "tmp");
        assert!(pod["volumes"][0]["emptyDir"].is_object());
    }
}

#[test]
fn service_monitor_is_optional() {
    let r = render(
        json!({"metrics": {"port": 9090, "serviceMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "prom"}}}}),
    );
    let sm = r.one("ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["namespace"], NAMESPACE);
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}])
    );
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        r.one("Service")["spec"]["selector"]
    );
    assert_eq!(r.one("Service")["spec"]["ports"][0]["port"], 9090);
    assert_eq!(r.args(), ["run", "--metrics-addr", "0.0.0.0:9090"]);
}

#[test]
fn values_are_checked_against_the_schema() {
    let cases = [
        (json!({"replicas": -1}), "/replicas"),
        (json!({"replica": 2}), "replica"),
        (
            json!({"watchNamespaces": ["Not_A_Namespace"]}),
            "/watchNamespaces/0",
        ),
        (
            json!({"image": {"repository": "x", "pullPolicy": "Sometimes"}}),
            "/image/pullPolicy",
        ),
        (json!({"metrics": {"port": 70000}}), "/metrics/port"),
    ];
    for (values, field) in cases {
        match try_render(values.clone()) {
            Ok(r) => panic!(
                "{values} rendered, expected a schema error; got {:#?}",
                r.kinds()
            ),
            Err(e) => assert!(
                e.contains("schema") && e.contains(field),
                "the error for {values} names {field}: {e}"
            ),
        }
    }
    // An existing ServiceAccount must be named.
    let err = try_render(json!({"serviceAccount": {"create": false}})).err();
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("serviceAccount.name")),
        "serviceAccount.create=false without a name: {err:?}"
    );
    let r = render(json!({"serviceAccount": {"create": false, "name": "mine"}}));
    assert!(r.of_kind("ServiceAccount").is_empty());
    assert_eq!(
        r.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        "mine"
    );
}

#[test]
fn chart_crd_is_the_generated_crd() {
    let generated = repo_root().join("crds/yaml/trainingjob.yaml");
    let copy = chart_dir().join("crds/trainingjob.yaml");
    let a = std::fs::read(&generated).unwrap();
    let b = std::fs::read(&copy).unwrap();
    assert!(
        a == b,
        "{} differs from {}: run `cp {} {}`",
        copy.display(),
        generated.display(),
        generated.display(),
        copy.display()
    );
    let crds: Vec<_> = std::fs::read_dir(chart_dir().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(crds, ["trainingjob.yaml"], "the chart ships one CRD");
}

fn example_files() -> Vec<String> {
    let dir = repo_root().join("configs/trainingjobs");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn examples_match_the_crd_schema() {
    let crd = repo_root().join("crds/yaml/trainingjob.yaml");
    let files = example_files();
    assert!(files.len() >= 13, "examples: {files:?}");
    let mut args = vec!["validate", crd.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let report = helm_py(&args);
    let report = report.as_array().unwrap();
    assert_eq!(report.len(), files.len());
    let failures: Vec<String> = report
        .iter()
        .flat_map(|r| {
            strings(&r["errors"])
                .into_iter()
                .map(move |e| format!("{}: {e}", r["file"].as_str().unwrap()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "not valid against the CRD's openAPIV3Schema:\n{}",
        failures.join("\n")
    );
}

#[test]
fn schema_check_catches_a_bad_manifest() {
    let dir = std::env::temp_dir().join(format!("ferrotune-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good =
        std::fs::read_to_string(repo_root().join("configs/trainingjobs/cpu-smollm2-kind.yaml"))
            .unwrap();
    let bad = good
        .replace("procsPerNode: 1", "procsPerNode: 0")
        .replace("mode: lora", "mode: lroa");
    assert_ne!(bad, good);
    let path = dir.join("bad.yaml");
    std::fs::write(&path, bad).unwrap();
    let crd = repo_root().join("crds/yaml/trainingjob.yaml");
    let report = helm_py(&["validate", crd.to_str().unwrap(), path.to_str().unwrap()]);
    let errors = strings(&report[0]["errors"]).join("\n");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        errors.contains("spec.parallelism.procsPerNode")
            && errors.contains("spec.training.training.mode"),
        "both bad fields reported: {errors}"
    );
}
