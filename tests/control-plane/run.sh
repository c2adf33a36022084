#!/usr/bin/env bash
# The second test command: the operator against a real Kubernetes control plane.
#
# Builds (once per source hash, cached outside the repository) a kube-apiserver + etcd +
# kube-controller-manager of the release pinned in go.mod, starts it on loopback, and checks
# against it: the CRDs of crds/ are accepted and Established (and a broken CEL rule is refused
# with the apiserver's message); every kustomization of deploy/ passes a server-side dry-run
# without warnings; the Helm chart passes `helm install --dry-run=server` (default, namespaced
# and all add-ons); deploy/'s RBAC (namespaced and cluster-wide variants) grants the operator's
# ServiceAccount exactly what it uses; then the whole e2e suite runs against the cluster with the
# in-process operator authenticated as that ServiceAccount, and kstatus judging its objects.
# Always stops the control plane. The last line is `N passed, M failed`; exit status 1 on any
# failure. Needs Go (the first build takes 15-20 min on 2 cores; later runs reuse it).
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/tests/control-plane"
cd "$repo"

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $1"; }
fail() { failed=$((failed + 1)); echo "FAIL  $1"; }
finish() {
  echo "$passed passed, $failed failed"
  [[ $failed -eq 0 ]]
  exit
}

if ! bin="$(bash "$here/build.sh")"; then
  fail "build the control plane"
  finish
fi

state="$(mktemp -d "${TMPDIR:-/tmp}/alexa-control-plane.XXXXXX")"
cp_pid=""
cleanup() {
  if [[ -n "$cp_pid" ]]; then
    kill "$cp_pid" 2>/dev/null
    wait "$cp_pid" 2>/dev/null
  fi
  # Logs are kept when something failed, for the report above.
  if [[ $failed -eq 0 ]]; then rm -rf "$state"; else echo "logs: $state" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s.%N)
"$bin" serve --dir "$state" --etcd-compaction-interval=30s >"$state/serve.out" 2>&1 &
cp_pid=$!
admin="$state/admin.kubeconfig"
for _ in $(seq 1 1800); do
  [[ -f "$admin" ]] && break
  kill -0 "$cp_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ ! -f "$admin" ]]; then
  cat "$state/serve.out"
  tail -n 20 "$state/kube-apiserver.log" 2>/dev/null
  fail "control plane starts"
  finish
fi
pass "control plane starts ($(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s; $(head -n1 "$state/serve.out"))"

k() { "$bin" kubectl --kubeconfig "$admin" "$@"; }
out="$state/out"

# --- CRDs -------------------------------------------------------------------------------
for crd in crds/*.yaml; do
  name="$(basename "$crd" .yaml)"
  if k apply --server-side --field-manager=e2e -f "$crd" >"$out" 2>&1 &&
    k wait --for=condition=Established --timeout=60s "crd/$name" >>"$out" 2>&1; then
    pass "CRD $name accepted and Established"
  else
    cat "$out"
    fail "CRD $name accepted and Established"
  fi
done
if k apply --server-side --dry-run=server -f "$here/testdata/broken-cel-crd.yaml" >"$out" 2>&1; then
  fail "a CRD with a broken CEL rule is refused"
elif grep -q "compilation failed" "$out" && grep -q "replicaz" "$out"; then
  pass "a CRD with a broken CEL rule is refused: $(grep -o 'compilation failed[^,]*' "$out" | head -n1)"
else
  cat "$out"
  fail "a CRD with a broken CEL rule is refused with the compiler's message"
fi

# --- deploy/: server-side dry-run of every kustomization ----------------------------------
# Namespaced objects need their namespace, and the monitoring add-on its (stand-in) CRD.
k create namespace alexa-skills >/dev/null 2>&1
k apply --server-side --field-manager=e2e -f deploy/base/namespace.yaml >/dev/null 2>&1
for crd in servicemonitor prometheusrule; do
  k apply --server-side --field-manager=e2e -f "$here/testdata/$crd-crd.yaml" >/dev/null 2>&1 &&
    k wait --for=condition=Established --timeout=60s "crd/${crd}s.monitoring.coreos.com" >/dev/null 2>&1
done
for kz in $(find deploy -name kustomization.yaml | sort); do
  dir="$(dirname "$kz")"
  ns_args=()
  [[ "$dir" == deploy/samples ]] && ns_args=(-n alexa-skills)
  if ! k kustomize "$dir" >"$state/rendered.yaml" 2>"$out"; then
    cat "$out"
    fail "kustomize $dir renders"
    continue
  fi
  if k apply --server-side --field-manager=e2e --dry-run=server "${ns_args[@]}" -f "$state/rendered.yaml" >"$out" 2>&1 &&
    ! grep -q "^Warning:" "$out"; then
    pass "$dir: server-side dry-run accepted without warnings ($(grep -c 'serverside-applied' "$out") objects)"
  else
    cat "$out"
    fail "$dir: server-side dry-run accepted without warnings"
  fi
done

# --- the Helm chart: helm install --dry-run=server ------------------------------------------
# helm is built from its Go module by tests/tools/build.sh (.ci/install runs it).
if tools="$(bash "$repo/tests/tools/build.sh")"; then
  for setup in "default:" "namespaced:--set watchNamespaces={alexa-skills}" \
    "all add-ons:--set serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true,networkPolicy.enabled=true,kubeStateMetrics.enabled=true"; do
    name="${setup%%:*}"
    read -r -a values <<<"${setup#*:}"
    if "$tools/helm" install alexa-skill-operator charts/alexa-skill-operator --kubeconfig "$admin" \
      -n alexa-skill-operator-system --dry-run=server "${values[@]}" >"$out" 2>&1 &&
      ! grep -q "^Warning:" "$out"; then
      pass "chart ($name): helm install --dry-run=server accepted without warnings"
    else
      cat "$out"
      fail "chart ($name): helm install --dry-run=server accepted without warnings"
    fi
  done
else
  fail "build helm (tests/tools/build.sh)"
fi

# --- RBAC: exactly what the operator uses --------------------------------------------------
sa="system:serviceaccount:alexa-skill-operator-system:alexa-skill-operator"
can() { k auth can-i --as="$sa" "$@" >/dev/null 2>&1; }
# "verb resource [subresource]" the operator uses in a watched namespace (deploy/rbac).
uses=(
  "get skillaccountlinkings.alexa.operator.dev" "list skillaccountlinkings.alexa.operator.dev"
  "watch skillaccountlinkings.alexa.operator.dev" "patch skillaccountlinkings.alexa.operator.dev"
  "patch skillaccountlinkings.alexa.operator.dev status"
  "update skillaccountlinkings.alexa.operator.dev finalizers"
  "get skillenablements.alexa.operator.dev" "list skillenablements.alexa.operator.dev"
  "watch skillenablements.alexa.operator.dev" "patch skillenablements.alexa.operator.dev"
  "patch skillenablements.alexa.operator.dev status"
  "update skillenablements.alexa.operator.dev finalizers"
  "get alexacredentials.alexa.operator.dev" "list alexacredentials.alexa.operator.dev"
  "watch alexacredentials.alexa.operator.dev" "patch alexacredentials.alexa.operator.dev"
  "patch alexacredentials.alexa.operator.dev status"
  "update alexacredentials.alexa.operator.dev finalizers"
  "get secrets" "list secrets" "watch secrets" "create events.events.k8s.io" "get namespaces"
)
# The cluster-scoped ClusterAlexaCredentials: only the cluster-wide install follows them.
cluster_uses=(
  "get clusteralexacredentials.alexa.operator.dev" "list clusteralexacredentials.alexa.operator.dev"
  "watch clusteralexacredentials.alexa.operator.dev" "patch clusteralexacredentials.alexa.operator.dev"
  "patch clusteralexacredentials.alexa.operator.dev status"
  "update clusteralexacredentials.alexa.operator.dev finalizers"
)
cluster_refused=(
  "create clusteralexacredentials.alexa.operator.dev" "delete clusteralexacredentials.alexa.operator.dev"
)
# Neighbours it must not get.
refused=(
  "create secrets" "update secrets" "patch secrets" "delete secrets" "list configmaps"
  "create skillaccountlinkings.alexa.operator.dev" "update skillaccountlinkings.alexa.operator.dev"
  "delete skillaccountlinkings.alexa.operator.dev" "delete skillenablements.alexa.operator.dev"
  "update skillaccountlinkings.alexa.operator.dev status" "patch events.events.k8s.io"
  "create events" "list pods" "get leases.coordination.k8s.io"
  "create alexacredentials.alexa.operator.dev" "delete alexacredentials.alexa.operator.dev"
)
# check_rbac LABEL yes|no ARRAY-NAME [can-i args...]: every entry of the array is (not) allowed.
check_rbac() {
  local label="$1" expect="$2" list="$3"
  shift 3
  local wrong=() entry verb res sub
  local -n entries="$list"
  for entry in "${entries[@]}"; do
    read -r verb res sub <<<"$entry"
    local args=("$verb" "$res" "$@")
    [[ -n "$sub" ]] && args+=(--subresource="$sub")
    if can "${args[@]}"; then got=yes; else got=no; fi
    [[ "$got" == "$expect" ]] || wrong+=("'$entry'")
  done
  if [[ ${#wrong[@]} -eq 0 ]]; then
    pass "$label (${#entries[@]} checked)"
  else
    fail "$label; wrong for: ${wrong[*]}"
  fi
}
lease_ok=(
  "get leases.coordination.k8s.io" "create leases.coordination.k8s.io"
  "patch leases.coordination.k8s.io"
)
lease_refused=("list leases.coordination.k8s.io" "delete leases.coordination.k8s.io")
# The digest key Secret in the operator namespace: read by name, created on first start.
digest_ok=("get secrets/alexa-skill-operator-digest-key" "create secrets")
digest_refused=(
  "get secrets" "list secrets" "update secrets/alexa-skill-operator-digest-key"
  "patch secrets/alexa-skill-operator-digest-key" "delete secrets/alexa-skill-operator-digest-key"
)
others_refused=("${uses[@]}")

# Namespaced variant first, while it is the only RBAC the ServiceAccount has.
if k kustomize deploy/namespaced 2>/dev/null | k apply --server-side --field-manager=e2e -f - >"$out" 2>&1; then
  check_rbac "deploy/namespaced grants what the operator uses in alexa-skills" yes uses -n alexa-skills
  check_rbac "deploy/namespaced refuses its neighbours in alexa-skills" no refused -n alexa-skills
  check_rbac "deploy/namespaced grants nothing in other namespaces" no others_refused -n default
  check_rbac "deploy/namespaced grants nothing cluster-wide" no others_refused --all-namespaces
  check_rbac "deploy/namespaced grants no ClusterAlexaCredentials" no cluster_uses
  check_rbac "deploy/namespaced grants the digest key in the operator namespace" yes digest_ok -n alexa-skill-operator-system
  check_rbac "deploy/namespaced reads no other Secret there" no digest_refused -n alexa-skill-operator-system
else
  cat "$out"
  fail "deploy/namespaced applies"
fi
if k apply --server-side --field-manager=e2e -k deploy/ >"$out" 2>&1; then
  check_rbac "deploy/ grants what the operator uses in any namespace" yes uses -n default
  check_rbac "deploy/ grants it cluster-wide (--all-namespaces)" yes uses --all-namespaces
  check_rbac "deploy/ refuses its neighbours" no refused -n default
  check_rbac "deploy/ grants ClusterAlexaCredentials" yes cluster_uses
  check_rbac "deploy/ refuses writing ClusterAlexaCredentials" no cluster_refused
  check_rbac "deploy/ grants the leader-election Lease in the operator namespace" yes lease_ok -n alexa-skill-operator-system
  check_rbac "deploy/ refuses other Lease verbs there" no lease_refused -n alexa-skill-operator-system
  check_rbac "deploy/ refuses Leases elsewhere" no lease_ok -n default
  check_rbac "deploy/ grants the digest key in the operator namespace" yes digest_ok -n alexa-skill-operator-system
else
  cat "$out"
  fail "deploy/ applies"
fi

# --- the e2e suite, the operator running as its ServiceAccount ---------------------------
operator_kc="$state/operator.kubeconfig"
# The admin kubeconfig with the ServiceAccount's token instead of the admin's (passed through
# the environment, never on a command line or in output).
if TOKEN="$(k -n alexa-skill-operator-system create token alexa-skill-operator --duration=4h 2>"$out")" &&
  TOKEN="$TOKEN" awk '$1 == "token:" { sub(/token: .*/, "token: " ENVIRON["TOKEN"]) } { print }' "$admin" >"$operator_kc" &&
  [[ "$("$bin" kubectl --kubeconfig "$operator_kc" auth whoami -o jsonpath='{.status.userInfo.username}' 2>>"$out")" == "$sa" ]]; then
  pass "a token of the operator's ServiceAccount authenticates as $sa"
else
  cat "$out"
  fail "a token of the operator's ServiceAccount authenticates as $sa"
fi

e2e_log="$state/e2e.log"
e2e_started=$SECONDS
RUST_BACKTRACE=0 ALEXA_E2E_KUBECONFIG="$admin" ALEXA_E2E_OPERATOR_KUBECONFIG="$operator_kc" \
  ALEXA_E2E_KSTATUS="$bin" cargo test --test e2e -- --show-output >"$e2e_log" 2>&1
e2e_status=$?
# --show-output: the skip notices of passing tests are printed too.
grep -E "^test .* \.\.\. " "$e2e_log"
grep -B2 "^skipped on the real apiserver" "$e2e_log" | grep -E "^---- |^skipped"
result="$(grep -E "^test result:" "$e2e_log" | tail -n1)"
if [[ -z "$result" ]]; then
  tail -n 40 "$e2e_log"
  fail "e2e suite runs against the real apiserver"
else
  if [[ $e2e_status -ne 0 ]]; then
    # Panics and assertion messages of the failed tests.
    awk '/^failures:$/ { f = 1 } f' "$e2e_log" | head -n 400
  fi
  e2e_passed="$(sed -n 's/.* \([0-9]*\) passed.*/\1/p' <<<"$result")"
  e2e_failed="$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$result")"
  passed=$((passed + e2e_passed))
  failed=$((failed + e2e_failed))
  skipped="$(grep -c "skipped on the real apiserver" "$e2e_log")"
  echo "e2e on the real apiserver: $e2e_passed passed ($skipped of them skipped: test-server hooks), $e2e_failed failed in $((SECONDS - e2e_started)) s"
  # Each test deletes its namespace (the namespace controller then empties it): none may be
  # left behind, e.g. held Terminating by a finalizer.
  left=""
  for _ in $(seq 1 120); do
    left="$(k get namespaces -o name | grep '^namespace/e2e-')"
    [[ -z "$left" ]] && break
    sleep 0.5
  done
  if [[ -z "$left" ]]; then
    pass "every e2e test namespace was deleted"
  else
    fail "e2e test namespaces left behind: $(echo $left)"
  fi
fi
finish
