#!/usr/bin/env bash
# Profiles the operator during one convergence run of the benchmark (how the bottlenecks in
# docs/BENCHMARKS.md were found). Builds an unstripped release binary with line tables into
# target/profiling (a separate target dir, so the normal build is untouched; for `heap` without
# mimalloc, since heaptrack sees only malloc's callers), then:
#   bash bench/profile.sh cpu  [N]   perf record (DWARF call graphs) → target/profiling/perf-N.txt
#   bash bench/profile.sh heap [N]   heaptrack → target/profiling/heaptrack-N.txt (peak consumers)
# N defaults to 10000. Needs perf or heaptrack (Debian: apt-get install linux-perf heaptrack).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mode="${1:-cpu}"
n="${2:-10000}"
prof="$root/target/profiling"
allocator=()
if [ "$mode" = heap ]; then allocator=(--no-default-features); fi
CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  cargo build --release --bin alexa-skill-operator --target-dir "$prof" "${allocator[@]}"
cargo build --release --example bench
bin="$prof/release/alexa-skill-operator"
wrapper="$prof/operator-$mode.sh"
case "$mode" in
  cpu)
    # perf attaches to the operator; SIGTERM from the benchmark is passed on, then perf stops.
    cat > "$wrapper" <<SH
#!/usr/bin/env bash
"$bin" "\$@" &
op=\$!
perf record -F 199 --call-graph dwarf,8192 -o "$prof/perf-$n-\$\$.data" -p \$op 2>/dev/null &
perf=\$!
trap 'kill -TERM \$op' TERM INT
wait \$op; wait \$op
kill -INT \$perf; wait \$perf
SH
    ;;
  heap)
    cat > "$wrapper" <<SH
#!/usr/bin/env bash
fifo="$prof/heaptrack-\$\$.fifo"; rm -f "\$fifo"; mkfifo "\$fifo"
/usr/lib/heaptrack/libexec/heaptrack_interpret < "\$fifo" | gzip > "$prof/heaptrack-$n-\$\$.gz" &
exec env LD_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so DUMP_HEAPTRACK_OUTPUT="\$fifo" "$bin" "\$@"
SH
    ;;
  *) echo "usage: bench/profile.sh cpu|heap [N]" >&2; exit 2 ;;
esac
chmod +x "$wrapper"
BENCH_OPERATOR_BIN="$wrapper" target/release/examples/bench --section 3 --sizes "$n" \
  --out "$prof/report-$mode-$n"
sleep 2
case "$mode" in
  cpu)
    # The convergence run's recording is the largest one (the idle run makes a small one too).
    data="$(ls -S "$prof"/perf-"$n"-*.data | head -1)"
    perf report -i "$data" --no-children --sort symbol --stdio --percent-limit 0.7 \
      -g none 2>/dev/null | sed 's/ *- *- *$//' > "$prof/perf-$n.txt"
    perf report -i "$data" --children --sort symbol --stdio --percent-limit 3 \
      -g none 2>/dev/null | sed 's/ *- *- *$//' > "$prof/perf-$n-children.txt"
    echo "wrote $prof/perf-$n.txt and $prof/perf-$n-children.txt"
    ;;
  heap)
    # The convergence run's trace is the largest one (the idle run writes a small one too).
    trace="$(ls -S "$prof"/heaptrack-"$n"-*.gz | head -1)"
    heaptrack_print -f "$trace" --print-peaks 0 --print-allocators 0 --print-temporary 0 \
      --print-leaks 0 -F "$prof/heaptrack-$n.folded" --flamegraph-cost-type peak >/dev/null
    python3 bench/heap_summary.py "$prof/heaptrack-$n.folded" "$n" > "$prof/heaptrack-$n.txt"
    echo "wrote $prof/heaptrack-$n.txt (peak heap by allocation site; from $trace)"
    ;;
esac
