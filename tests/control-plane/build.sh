#!/usr/bin/env bash
# Builds the control-plane binary once per source hash (go.mod, go.sum, *.go) into the cache
# outside the repository and prints its path. Idempotent: a second call is a hash and a stat.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${ALEXA_CP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alexa-skill-operator/control-plane}"
hash="$(cd "$here" && cat go.mod go.sum $(ls *.go | sort) | sha256sum | cut -c1-16)"
bin="$cache/control-plane-$hash"
if [[ ! -x "$bin" ]]; then
  command -v go >/dev/null || { echo "control-plane: Go is needed to build the control plane" >&2; exit 1; }
  mkdir -p "$cache"
  kver="$(sed -n 's/^\tk8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/go.mod")"
  major="${kver#v}"; major="${major%%.*}"
  minor="${kver#v*.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$kver -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  echo "control-plane: building Kubernetes $kver (first build: 15-20 min on 2 cores) -> $bin" >&2
  start=$SECONDS
  (cd "$here" && go build -ldflags "$ldflags" -o "$bin.tmp" .)
  mv "$bin.tmp" "$bin"
  echo "control-plane: built in $((SECONDS - start)) s" >&2
  # Older builds of other source hashes are dead weight (each ~150 MB).
  find "$cache" -maxdepth 1 -name 'control-plane-*' ! -name "control-plane-$hash" -delete
fi
echo "$bin"
