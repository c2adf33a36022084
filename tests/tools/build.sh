#!/usr/bin/env bash
# Builds the tools tests/deploy/ runs (helm, promtool, actionlint), each from the Go module
# pinned in its own directory here (one module per tool: their dependencies clash), once per
# source hash (every go.mod and go.sum) into the cache outside the repository, and prints the
# directory holding them. Idempotent: a second call is a hash and a stat. With --dir it only
# prints that directory (tests/deploy/ looks the tools up there without building them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${ALEXA_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alexa-skill-operator/tools}"
tools=(helm promtool actionlint)
hash="$(cd "$here" && for t in "${tools[@]}"; do cat "$t/go.mod" "$t/go.sum"; done | sha256sum | cut -c1-16)"
dir="$cache/tools-$hash"
if [[ "${1:-}" == --dir ]]; then echo "$dir"; exit 0; fi
missing=()
for t in "${tools[@]}"; do [[ -x "$dir/$t" ]] || missing+=("$t"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  command -v go >/dev/null || { echo "tools: Go is needed to build ${missing[*]}" >&2; exit 1; }
  mkdir -p "$dir"
  echo "tools: building ${missing[*]} (first build: about 20 min on 2 cores) -> $dir" >&2
  start=$SECONDS
  for t in "${missing[@]}"; do
    # The tool block of the module names the package; build it to a temporary name first so
    # an interrupted build never leaves a half-written binary under the final name.
    pkg="$(sed -n 's/^tool \(.*\)$/\1/p' "$here/$t/go.mod")"
    (cd "$here/$t" && go build -trimpath -ldflags "-s -w" -o "$dir/$t.tmp" "$pkg")
    mv "$dir/$t.tmp" "$dir/$t"
  done
  echo "tools: built in $((SECONDS - start)) s" >&2
  # Builds of other source hashes are dead weight.
  find "$cache" -maxdepth 1 -name 'tools-*' ! -name "tools-$hash" -exec rm -rf {} +
fi
echo "$dir"
