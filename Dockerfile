# syntax=docker/dockerfile:1
# Image of alexa-skill-operator: a release build of the one binary on a distroless base.
#
# - Builder pinned by tag to the toolchain CI tests with; the final stage is distroless "cc"
#   (glibc + libgcc + CA certificates, no shell, no package manager), matching the builder's
#   Debian 12 glibc. TLS is rustls, so no OpenSSL is needed. Pin both by digest in your own
#   build pipeline if you need reproducible images.
# - `--bin alexa-skill-operator` with `--locked`: exactly the versions in Cargo.lock, and only
#   the operator binary. The workspace crate crates/kube-test-server is a dev-dependency only,
#   so it is not compiled into a release build (tests/deploy.rs checks it is no normal
#   dependency); its manifest is still copied because Cargo needs every workspace member's
#   Cargo.toml to load the workspace.
# - Runs as UID/GID 65532 (distroless "nonroot"), the UID the Deployment's securityContext
#   expects; works with a read-only root filesystem (only /tmp is written, an emptyDir).
#
# Build: docker build -t alexa-skill-operator:0.1.0 .
# (BuildKit, the default builder since Docker 23, is needed for the cargo registry cache mount.)
# This project's CI has no Docker engine, so the image is not built there; tests/deploy.rs checks
# this file's shape, and that the binary runs from an empty read-only directory with only /tmp
# writable. tests/e2e-kind.sh builds and runs it for real.
FROM rust:1.95.0-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin alexa-skill-operator \
    && cp target/release/alexa-skill-operator /alexa-skill-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /alexa-skill-operator /alexa-skill-operator
USER 65532:65532
# /metrics, /healthz and /readyz (--metrics-addr).
EXPOSE 8080
ENTRYPOINT ["/alexa-skill-operator"]
CMD ["run"]
