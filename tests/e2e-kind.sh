#!/usr/bin/env bash
# End-to-end check of deploy/ in a real Kubernetes cluster (kind), against the built-in Alexa
# simulator running in the cluster. It cannot run in this project's CI: CI machines have no
# Docker engine and no kind. tests/deploy/ only checks that it parses (`bash -n`).
#
# Needs docker, kind and kubectl (1.27 or newer) on PATH. Run from anywhere:
#   bash tests/e2e-kind.sh                 # creates kind cluster alexa-e2e, deletes it at the end
#   KEEP_CLUSTER=1 bash tests/e2e-kind.sh  # leave the cluster up to look around
#   CLUSTER=mine bash tests/e2e-kind.sh    # use (or create) another kind cluster
#
# What it does: builds the image from the Dockerfile and loads it into kind; installs deploy/
# (CRDs, RBAC, two replicas with leader election) with the operator pointed at the simulator
# (`alexa-skill-operator simulate`, which execs the `alexa-simulator` binary the same image
# ships; a Deployment + Service in the operator namespace); applies deploy/samples/ (the
# simulator's sandbox credentials) and waits until the SkillAccountLinking and both
# SkillEnablements are Ready; checks a replica holds the Lease; deletes the samples and waits
# for the finalizers to finish.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER="${CLUSTER:-alexa-e2e}"
TAG="e2e"
IMAGE="alexa-skill-operator:${TAG}"
OPERATOR_NS="alexa-skill-operator-system"
SAMPLES_NS="alexa-samples"
WORK="${ROOT}/target/e2e-kind"   # inside the repo so kustomize may reference ../../deploy

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required" >&2; exit 2; }
done

log() { printf '\n== %s\n' "$*"; }

dump() {
  log "diagnostics"
  kubectl get sal,sen -A -o wide || true
  kubectl describe sal,sen -n "$SAMPLES_NS" || true
  kubectl -n "$OPERATOR_NS" get pods,lease -o wide || true
  kubectl -n "$OPERATOR_NS" logs deploy/alexa-skill-operator --all-containers --tail=200 || true
  kubectl -n "$OPERATOR_NS" logs deploy/alexa-simulator --tail=100 || true
}

cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then dump; fi
  if [ "${KEEP_CLUSTER:-0}" != "1" ] && [ "${CREATED_CLUSTER:-0}" = "1" ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

log "kind cluster ${CLUSTER}"
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
  CREATED_CLUSTER=1
fi
kubectl config use-context "kind-${CLUSTER}" >/dev/null

log "build and load ${IMAGE}"
docker build -t "$IMAGE" "$ROOT"
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "overlay: deploy/ + simulator, operator pointed at it"
rm -rf "$WORK" && mkdir -p "$WORK"
cat >"$WORK/kustomization.yaml" <<EOF
resources:
- ../../deploy
- simulator.yaml
images:
- name: alexa-skill-operator
  newTag: ${TAG}
patches:
- path: operator-args.yaml
EOF
cat >"$WORK/operator-args.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: alexa-skill-operator
  namespace: alexa-skill-operator-system
spec:
  template:
    spec:
      containers:
      - name: operator
        args:
        - run
        - --leader-election
        - --metrics-addr=0.0.0.0:8080
        - --log-format=json
        - --smapi-url=http://alexa-simulator:9100
        - --lwa-url=http://alexa-simulator:9100/auth/o2/token
        - --customer-discovery-url=http://alexa-simulator:9100
        # Regional customer API hosts returned by discovery: never the real Amazon here.
        - --endpoint-override=api.amazonalexa.com=http://alexa-simulator:9100,api.eu.amazonalexa.com=http://alexa-simulator:9101,api.fe.amazonalexa.com=http://alexa-simulator:9102
EOF
# The simulator: `simulate --listen 0.0.0.0:9100 --allow-remote` (the operator binary execs the
# image's /alexa-simulator; EU and FE customer APIs on 9101 and 9102), hardened like the
# operator because the namespace enforces `restricted`.
cat >"$WORK/simulator.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: alexa-simulator
  namespace: ${OPERATOR_NS}
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: alexa-simulator}
  template:
    metadata:
      labels: {app.kubernetes.io/name: alexa-simulator}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: simulator
        image: ${IMAGE}
        imagePullPolicy: IfNotPresent
        args: [simulate, --listen, 0.0.0.0:9100, --allow-remote]
        ports:
        - {name: main, containerPort: 9100}
        - {name: eu, containerPort: 9101}
        - {name: fe, containerPort: 9102}
        readinessProbe:
          tcpSocket: {port: main}
          periodSeconds: 2
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
---
apiVersion: v1
kind: Service
metadata:
  name: alexa-simulator
  namespace: ${OPERATOR_NS}
spec:
  selector: {app.kubernetes.io/name: alexa-simulator}
  ports:
  - {name: main, port: 9100, targetPort: main}
  - {name: eu, port: 9101, targetPort: eu}
  - {name: fe, port: 9102, targetPort: fe}
EOF

log "install (kubectl apply -k): CRDs first, then the rest"
kubectl apply -k "$ROOT/deploy/crds/"
kubectl wait --for=condition=Established --timeout=60s \
  crd/skillaccountlinkings.alexa.operator.dev crd/skillenablements.alexa.operator.dev
kubectl apply -k "$WORK"
kubectl -n "$OPERATOR_NS" rollout status deploy/alexa-simulator --timeout=120s
kubectl -n "$OPERATOR_NS" rollout status deploy/alexa-skill-operator --timeout=180s

log "samples in namespace ${SAMPLES_NS}"
kubectl create namespace "$SAMPLES_NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$SAMPLES_NS" -k "$ROOT/deploy/samples/"
kubectl wait --for=condition=Ready -n "$SAMPLES_NS" --timeout=180s \
  sal/sandbox-skill-development sen/sandbox-skill-owner sen/sandbox-skill-na-customer
kubectl get sal,sen -n "$SAMPLES_NS" -o wide

log "leader election: one replica holds the Lease"
holder="$(kubectl -n "$OPERATOR_NS" get lease alexa-skill-operator -o jsonpath='{.spec.holderIdentity}')"
[ -n "$holder" ] || { echo "no Lease holder" >&2; exit 1; }
echo "leader: ${holder}"

log "delete the samples: finalizers clean up on the simulator, then let go"
kubectl delete -n "$SAMPLES_NS" sal/sandbox-skill-development sen/sandbox-skill-owner \
  sen/sandbox-skill-na-customer --wait --timeout=120s
kubectl delete -n "$SAMPLES_NS" -k "$ROOT/deploy/samples/" --ignore-not-found

log "e2e-kind: passed"
