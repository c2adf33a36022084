#!/usr/bin/env bash
# Installs the official ASK CLI (npm package ask-cli) into target/bench/ask-cli for the
# side-by-side benchmark (docs/BENCHMARKS.md section 6). Nothing is installed globally.
#
# ask-cli 2.30.7 depends (through @alexa/acdl) on antlr4ts@^0.5.0-alpha.4, which npm resolves
# to a broken 0.5.0-dev release ("Class extends value undefined" on every command); the
# "overrides" entry pins the working alpha (see docs/SIMULATOR.md, "Official clients").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${ASK_CLI_DIR:-$root/target/bench/ask-cli}"
version="${ASK_CLI_VERSION:-2.30.7}"
mkdir -p "$dest"
cd "$dest"
if [ -x node_modules/.bin/ask ] && node_modules/.bin/ask --version >/dev/null 2>&1; then
  echo "ask-cli already installed in $dest: $(node_modules/.bin/ask --version)"
  exit 0
fi
command -v npm >/dev/null || { echo "npm not found: install Node.js 18+ (e.g. apt-get install nodejs npm)" >&2; exit 1; }
cat > package.json <<JSON
{
  "name": "ask-cli-bench",
  "private": true,
  "dependencies": { "ask-cli": "$version" },
  "overrides": { "antlr4ts": "0.5.0-alpha.4" }
}
JSON
npm install --no-audit --no-fund --loglevel=error
node_modules/.bin/ask --version
