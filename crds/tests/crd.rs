//! The generated CRD: committed YAML up to date, a structural schema the API server accepts,
//! the CEL rules, and manifests parsed and checked the way users write them.

use ferrotune_crds::{TrainingJob, crd_yaml};
use kube::CustomResourceExt;
use serde_json::Value;

fn schema() -> Value {
    let crd = serde_json::to_value(TrainingJob::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn committed_yaml_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/yaml/trainingjob.yaml");
    let committed = std::fs::read_to_string(path).unwrap();
    assert!(
        committed == crd_yaml(),
        "{path} is stale: run `cargo run -p ferrotune-crds --bin crdgen {path}`"
    );
}

/// Kubernetes' structural-schema rules: every node has a type (or is int-or-string /
/// preserve-unknown-fields), no `$ref`, and `anyOf` / `oneOf` / `allOf` branches carry no
/// type, default, description or nullable of their own.
fn check_structural(node: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errors.push(format!("{at}: not an object"));
        return;
    };
    if obj.contains_key("$ref") {
        errors.push(format!("{at}: $ref"));
    }
    let free = obj.contains_key("x-kubernetes-int-or-string")
        || obj.contains_key("x-kubernetes-preserve-unknown-fields");
    if !obj.contains_key("type") && !free {
        errors.push(format!("{at}: no type"));
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for (i, branch) in obj
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for banned in ["type", "default", "description", "nullable"] {
                if branch.get(banned).is_some() {
                    errors.push(format!("{at}.{key}[{i}]: has {banned}"));
                }
            }
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            check_structural(child, &format!("{at}.{name}"), errors);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(items, &format!("{at}[]"), errors);
    }
    if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        check_structural(extra, &format!("{at}{{}}"), errors);
    }
}

#[test]
fn schema_is_structural() {
    let mut errors = Vec::new();
    check_structural(&schema(), "openAPIV3Schema", &mut errors);
    assert!(errors.is_empty(), "not structural:\n{}", errors.join("\n"));
}

#[test]
fn crd_has_names_columns_subresource_and_cel_rules() {
    let crd = serde_json::to_value(TrainingJob::crd()).unwrap();
    assert_eq!(crd["metadata"]["name"], "trainingjobs.ferrotune.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "tj");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["Phase", "Step", "Total", "Loss", "Restarts", "Age"]
    );

    let spec = &schema()["properties"]["spec"];
    let rules: Vec<&str> = spec["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules
            .iter()
            .any(|r| r.contains("model.hub") && r.contains("model.path"))
    );
    let storage_rules = &spec["properties"]["storage"]["x-kubernetes-validations"];
    assert!(
        storage_rules[0]["rule"]
            .as_str()
            .unwrap()
            .contains("mountPath")
    );
    // The strategy aliases are documented values of the same field.
    let strategies = &spec["properties"]["training"]["properties"]["distributed"]["properties"]["strategy"]
        ["enum"];
    for name in [
        "ddp",
        "zero2",
        "zero3",
        "fsdp",
        "deepspeed_zero2",
        "full_shard",
    ] {
        assert!(
            strategies.as_array().unwrap().iter().any(|v| v == name),
            "{name}"
        );
    }
}

const MINIMAL: &str = r#"
apiVersion: ferrotune.dev/v1alpha1
kind: TrainingJob
metadata: {name: demo, namespace: ml}
spec:
  image: ferrotune:cpu
  training:
    model: {path: /models/smollm2.gguf}
    data: {train: /data/train.jsonl}
  storage:
    output: {claimName: runs, mountPath: /runs}
"#;

#[test]
fn minimal_manifest_gets_defaults() {
    let job: TrainingJob = serde_saphyr::from_str(MINIMAL).unwrap();
    assert_eq!(job.spec.parallelism.world_size(), 1);
    assert_eq!(job.spec.parallelism.master_port, 29500);
    assert_eq!(job.spec.run_policy.backoff_limit, 3);
    assert!(!job.spec.run_policy.suspend);
    assert!(job.spec.problems().is_empty(), "{:?}", job.spec.problems());
}

#[test]
fn unknown_field_is_rejected_by_name() {
    let bad = MINIMAL.replace(
        "  image: ferrotune:cpu",
        "  image: ferrotune:cpu\n  replicas: 2",
    );
    let err = serde_saphyr::from_str::<TrainingJob>(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("replicas"), "{err}");
}

#[test]
fn problems_name_the_field_and_what_is_allowed() {
    let mut job: TrainingJob = serde_saphyr::from_str(MINIMAL).unwrap();
    job.spec.training.model.hub = Some("org/model".into());
    job.spec.storage.output.read_only = true;
    job.spec.storage.volumes.push(ferrotune_crds::ClaimMount {
        claim_name: "models".into(),
        mount_path: "/runs".into(),
        read_only: true,
    });
    job.spec.parallelism.nodes = 0;
    let problems: Vec<String> = job.spec.problems().iter().map(|p| p.to_string()).collect();
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(has("spec.training.model"), "{problems:?}");
    assert!(
        has("spec.storage.output.readOnly: must be false"),
        "{problems:?}"
    );
    assert!(has(
        "spec.storage.volumes[0].mountPath: /runs is already the mount of claim runs"
    ));
    assert!(
        has("spec.parallelism.nodes: must be in 1..=1024, got 0"),
        "{problems:?}"
    );
}

#[test]
fn a_hugging_face_token_only_comes_from_a_secret() {
    let rules =
        serde_json::to_string(&schema()["properties"]["spec"]["x-kubernetes-validations"]).unwrap();
    assert!(rules.contains("HF_TOKEN"), "the API server rejects it too");
    let with_env = |entry: &str| -> Vec<String> {
        let yaml = format!("{MINIMAL}  env:\n  - {entry}\n");
        let job: TrainingJob = serde_saphyr::from_str(&yaml).unwrap();
        job.spec.problems().iter().map(|p| p.to_string()).collect()
    };
    let literal = with_env("{name: HF_TOKEN, value: hf_abc}");
    assert_eq!(
        literal,
        [
            "spec.env[0].value: HF_TOKEN is never written into the manifest: put the token in a \
          Secret and set storage.hfToken"
        ]
    );
    let from_secret =
        with_env("{name: HF_TOKEN, valueFrom: {secretKeyRef: {name: hf, key: token}}}");
    assert!(from_secret.is_empty(), "{from_secret:?}");
    assert!(with_env("{name: NCCL_DEBUG, value: INFO}").is_empty());
}
