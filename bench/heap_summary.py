#!/usr/bin/env python3
"""Summarises heaptrack's folded peak-memory stacks (heaptrack_print -F ... --flamegraph-cost-type
peak): bytes live at the heap peak, attributed to the innermost frame of the operator or of the
libraries it drives (kube, serde_json, hyper, ...), so the per-object caches stand out."""
import collections
import re
import sys

INTERESTING = re.compile(
    r"alexa_skill_operator|kube_runtime|kube_client|kube_core|k8s_openapi|serde_json|hyper|h2|"
    r"reqwest|tokio|prometheus|tracing|rustls|hashbrown|futures"
)
SKIP = re.compile(r"alloc::|core::|std::|__rust|_rdl_|RawVec|raw_vec|<alloc|malloc|realloc")

# Subsystems, matched against each frame from the innermost outwards (the first frame that
# matches any of them decides), so a stack is counted once, by what allocated it.
SUBSYSTEMS = [
    ("predicate caches", re.compile(r"\(predicate\.rs\)")),
    ("kube-runtime scheduler (queued reconciles)", re.compile(r"scheduler|schedule_message")),
    ("kube-runtime runner", re.compile(r"runner\.rs|future_hash_map")),
    ("Secret cache", re.compile(r"\(secrets\.rs\)")),
    ("metric state", re.compile(r"\(metrics\.rs\)")),
    ("context maps", re.compile(r"\(context\.rs\)")),
    ("reflector cache (objects and keys)", re.compile(r"apply_watcher_event")),
    ("watch events being decoded", re.compile(r"try_poll_next<>, alexa_skill_operator::crd")),
    ("HTTP and TLS buffers", re.compile(r"hyper|h2|rustls|bytes_mut")),
]

def subsystem(fs):
    for f in reversed(fs):
        for name, rx in SUBSYSTEMS:
            if rx.search(f[:160]):
                return name
    return "other"

def frames(stack):
    return [f for f in stack.split(";") if f]

def main(path, objects=None):
    total = 0
    by_subsystem = collections.Counter()
    by_site = collections.Counter()
    by_crate = collections.Counter()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, cost = line.rstrip("\n").rpartition(" ")
            try:
                cost = int(cost)
            except ValueError:
                continue
            total += cost
            fs = frames(stack)
            by_subsystem[subsystem(fs)] += cost
            # innermost interesting frame (the folded stack lists the root first)
            site = next((f for f in reversed(fs) if INTERESTING.search(f) and not SKIP.search(f)), fs[-1] if fs else "?")
            own = next((f for f in reversed(fs) if "alexa_skill_operator" in f), None)
            by_site[site[:160]] += cost
            by_crate[(own or "(outside the operator's code)")[:160]] += cost
    mib = lambda b: b / 1048576
    print(f"heap at peak: {mib(total):.1f} MiB\n")
    print("by subsystem" + (f" (bytes per object of {objects})" if objects else "") + ":")
    for name, cost in by_subsystem.most_common():
        per = f"  {cost / objects:7.0f} B/object" if objects else ""
        print(f"  {mib(cost):7.2f} MiB{per}  {name}")
    print()
    print("by innermost library/operator frame:")
    for site, cost in by_site.most_common(25):
        print(f"  {mib(cost):7.2f} MiB  {site}")
    print("\nby innermost operator frame:")
    for site, cost in by_crate.most_common(15):
        print(f"  {mib(cost):7.2f} MiB  {site}")

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
