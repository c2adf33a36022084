#!/usr/bin/env bash
# One command for the whole benchmark report (docs/BENCHMARKS.md and docs/BENCHMARKS.json):
# builds the release operator binary and the benchmark, installs the ASK CLI into
# target/bench/ask-cli (npm; a failure is reported in section 6, not fatal), then runs every
# section. About 30 minutes on the 2-core development machine (section 9, scale, about 4 of them), plus the first release build.
# Extra arguments go to the benchmark (e.g. `bash bench/run.sh --section 4`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release --bin alexa-skill-operator --example bench
if ! bash bench/install-ask-cli.sh; then
  echo "bench/run.sh: ASK CLI installation failed; section 6 will report why" >&2
fi
if [ "$#" -eq 0 ]; then set -- --all; fi
exec target/release/examples/bench "$@"
