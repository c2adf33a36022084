# syntax=docker/dockerfile:1
# Image of alexa-skill-operator: release builds of the operator and of the Alexa API simulator on
# a distroless base.
#
# - Builder pinned by tag to the toolchain CI tests with; the final stage is distroless "cc"
#   (glibc + libgcc + CA certificates, no shell, no package manager), matching the builder's
#   Debian 12 glibc. TLS is rustls, so no OpenSSL is needed. Pin both by digest in your own
#   build pipeline if you need reproducible images.
# - `--bin alexa-skill-operator --bin alexa-simulator` with `--locked`: exactly the versions in
#   Cargo.lock, and only the two binaries. The simulator is its own crate (crates/alexa-simulator)
#   that the operator never links (tests/workspace.rs checks it); it ships in the same image only
#   so that `alexa-skill-operator simulate ARGS`, which execs the `alexa-simulator` found beside
#   it, works in a cluster: tests/e2e-kind.sh runs the simulator from this image. The operator's
#   entrypoint and behaviour are unchanged. crates/kube-test-server is a dev-dependency only, so
#   it is not compiled into a release build (tests/deploy/ checks it is no normal dependency);
#   its manifest is still copied because Cargo needs every workspace member's Cargo.toml to load
#   the workspace.
# - Runs as UID/GID 65532 (distroless "nonroot"), the UID the Deployment's securityContext
#   expects; works with a read-only root filesystem (only /tmp is written, an emptyDir).
#
# Build: docker build -t alexa-skill-operator:0.1.0 .
# (BuildKit, the default builder since Docker 23, is needed for the cargo registry cache mount.)
# This project's CI has no Docker engine, so the image is not built there; tests/deploy/ checks
# this file's shape, and that the binary runs from an empty read-only directory with only /tmp
# writable. tests/e2e-kind.sh builds and runs it for real.
FROM rust:1.95.0-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin alexa-skill-operator --bin alexa-simulator \
        -p alexa-skill-operator -p alexa-simulator \
    && cp target/release/alexa-skill-operator target/release/alexa-simulator /

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /alexa-skill-operator /alexa-skill-operator
# Beside the operator, where `alexa-skill-operator simulate` looks for it.
COPY --from=builder /alexa-simulator /alexa-simulator
USER 65532:65532
# mimalloc (the operator's allocator) commits memory as it is used instead of a whole arena at
# start: measured, 25 instead of 48 MiB idle and a lower peak (docs/DECISIONS.md, "Allocator").
ENV MIMALLOC_ARENA_EAGER_COMMIT=0
# /metrics, /healthz and /readyz (--metrics-addr).
EXPOSE 8080
ENTRYPOINT ["/alexa-skill-operator"]
CMD ["run"]
