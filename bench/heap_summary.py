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

def frames(stack):
    return [f for f in stack.split(";") if f]

def main(path):
    total = 0
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
            # innermost interesting frame (the folded stack lists the root first)
            site = next((f for f in reversed(fs) if INTERESTING.search(f) and not SKIP.search(f)), fs[-1] if fs else "?")
            own = next((f for f in reversed(fs) if "alexa_skill_operator" in f), None)
            by_site[site[:160]] += cost
            by_crate[(own or "(outside the operator's code)")[:160]] += cost
    mib = lambda b: b / 1048576
    print(f"heap at peak: {mib(total):.1f} MiB\n")
    print("by innermost library/operator frame:")
    for site, cost in by_site.most_common(25):
        print(f"  {mib(cost):7.2f} MiB  {site}")
    print("\nby innermost operator frame:")
    for site, cost in by_crate.most_common(15):
        print(f"  {mib(cost):7.2f} MiB  {site}")

if __name__ == "__main__":
    main(sys.argv[1])
