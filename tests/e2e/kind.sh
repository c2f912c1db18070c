#!/usr/bin/env bash
# End-to-end run on a local kind cluster: builds the CPU image, installs the chart, copies the
# embedded default model (SmolLM2-135M-Instruct) and the shipped dialogues into a claim, applies
# configs/trainingjobs/cpu-smollm2-kind.yaml and waits until the TrainingJob has Succeeded.
#
#   tests/e2e/kind.sh
#
# Needs docker (with a running daemon), kind, kubectl and helm; without them it says so and exits 0.
# Environment:
#   KIND_CLUSTER   cluster name (default ferrotune-e2e); an existing cluster of that name is reused
#   KEEP_CLUSTER   1: keep the cluster afterwards (default: delete it when this script created it)
#   IMAGE          image to build and load (default ferrotune:dev-cpu, the tag the example names)
#   TIMEOUT        how long to wait for the job (default 45m)
set -euo pipefail
cd "$(dirname "$0")/../.."

cluster="${KIND_CLUSTER:-ferrotune-e2e}"
image="${IMAGE:-ferrotune:dev-cpu}"
timeout="${TIMEOUT:-45m}"
operator_ns=ferrotune-system
jobs_ns=ferrotune-e2e
job=cpu-smollm2-kind

skip() {
  echo "tests/e2e/kind.sh: skipped: $*" >&2
  exit 0
}

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (this test needs docker, kind, kubectl and helm)"
done
docker info >/dev/null 2>&1 || skip "the docker daemon is not reachable (docker info failed)"

log() {
  printf '\n==> %s\n' "$*" >&2
}

created=0
cleanup() {
  if [ "$created" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    log "deleting kind cluster $cluster (KEEP_CLUSTER=1 keeps it)"
    kind delete cluster --name "$cluster" || true
  fi
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "reusing kind cluster $cluster"
else
  log "creating kind cluster $cluster"
  kind create cluster --name "$cluster" --wait 120s
  created=1
fi
kubectl config use-context "kind-$cluster" >/dev/null

log "building $image (Dockerfile, VARIANT=cpu)"
docker build --build-arg VARIANT=cpu -t "$image" .
kind load docker-image "$image" --name "$cluster"

log "installing the chart"
helm upgrade --install ferrotune charts/ferrotune \
  --namespace "$operator_ns" --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
  --wait --timeout 5m
kubectl -n "$operator_ns" rollout status deployment/ferrotune --timeout 2m

log "creating the claims and copying the model and data into ferrotune-inputs"
kubectl create namespace "$jobs_ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$jobs_ns" apply -f configs/trainingjobs/storage/kind.yaml
model="$(scripts/fetch-model.sh)"
kubectl -n "$jobs_ns" apply -f - <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: ferrotune-inputs-loader
spec:
  restartPolicy: Never
  containers:
    - name: loader
      image: busybox:1.37
      command: ["sh", "-c", "mkdir -p /inputs/quickstart && sleep 3600"]
      volumeMounts:
        - {name: inputs, mountPath: /inputs}
  volumes:
    - name: inputs
      persistentVolumeClaim: {claimName: ferrotune-inputs}
YAML
kubectl -n "$jobs_ns" wait --for=condition=Ready pod/ferrotune-inputs-loader --timeout 3m
kubectl -n "$jobs_ns" cp "$model" ferrotune-inputs-loader:/inputs/SmolLM2-135M-Instruct.Q4_1.gguf
kubectl -n "$jobs_ns" cp data/quickstart/train.jsonl ferrotune-inputs-loader:/inputs/quickstart/train.jsonl
kubectl -n "$jobs_ns" cp data/quickstart/eval.jsonl ferrotune-inputs-loader:/inputs/quickstart/eval.jsonl
kubectl -n "$jobs_ns" exec ferrotune-inputs-loader -- sh -c 'chmod -R a+rX /inputs && ls -lR /inputs'
kubectl -n "$jobs_ns" delete pod ferrotune-inputs-loader --wait=true

show() {
  log "TrainingJob $job"
  kubectl -n "$jobs_ns" get tj "$job" -o wide || true
  kubectl -n "$jobs_ns" get tj "$job" -o jsonpath='{.status}' || true
  echo
  kubectl -n "$jobs_ns" describe tj "$job" || true
  log "objects in $jobs_ns"
  kubectl -n "$jobs_ns" get jobs,services,pods -o wide || true
  local pod
  for pod in $(kubectl -n "$jobs_ns" get pods -o name); do
    log "logs of $pod"
    kubectl -n "$jobs_ns" logs "$pod" --all-containers --tail 200 || true
  done
  log "operator logs"
  kubectl -n "$operator_ns" logs deployment/ferrotune --tail 200 || true
}

log "applying configs/trainingjobs/$job.yaml and waiting (up to $timeout) for phase Succeeded"
kubectl -n "$jobs_ns" apply -f "configs/trainingjobs/$job.yaml"
kubectl get tj -A
if ! kubectl -n "$jobs_ns" wait "trainingjob/$job" --for=jsonpath='{.status.phase}'=Succeeded --timeout "$timeout"; then
  show
  echo "tests/e2e/kind.sh: FAILED: TrainingJob $job did not reach phase Succeeded within $timeout" >&2
  exit 1
fi
show
echo "tests/e2e/kind.sh: OK: TrainingJob $job Succeeded" >&2
