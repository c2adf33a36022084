#!/usr/bin/env bash
# Builds the chart suite's tools (helm, promtool, actionlint; pinned in go.mod's tool block)
# once per source hash (go.mod, go.sum) into the cache outside the repository and prints the
# directory holding them. Idempotent: a second call is a hash and a stat. With --dir it only
# prints that directory (tests/deploy/ looks the tools up there without building them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${ALEXA_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alexa-skill-operator/tools}"
hash="$(cd "$here" && cat go.mod go.sum | sha256sum | cut -c1-16)"
dir="$cache/tools-$hash"
if [[ "${1:-}" == --dir ]]; then echo "$dir"; exit 0; fi
if [[ ! -x "$dir/helm" || ! -x "$dir/promtool" || ! -x "$dir/actionlint" ]]; then
  command -v go >/dev/null || { echo "tools: Go is needed to build helm, promtool and actionlint" >&2; exit 1; }
  mkdir -p "$cache"
  echo "tools: building helm, promtool and actionlint (first build: about 10 min on 2 cores) -> $dir" >&2
  start=$SECONDS
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$dir.tmp/" \
    helm.sh/helm/v4/cmd/helm github.com/prometheus/prometheus/cmd/promtool \
    github.com/rhysd/actionlint/cmd/actionlint)
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  echo "tools: built in $((SECONDS - start)) s" >&2
  # Builds of other source hashes are dead weight.
  find "$cache" -maxdepth 1 -name 'tools-*' ! -name "tools-$hash" -exec rm -rf {} +
fi
echo "$dir"
