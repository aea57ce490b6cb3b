# syntax=docker/dockerfile:1
#
# wisp's images, one target each (see docs/kubernetes.md §6):
#
#   docker build --target proxy      -t ghcr.io/wisp-mesh/proxy:0.1.0 .
#   docker build --target init       -t ghcr.io/wisp-mesh/init:0.1.0 .
#   docker build --target controller -t ghcr.io/wisp-mesh/controller:0.1.0 .
#
# One builder stage compiles every binary once (`cargo build --locked`);
# the runtime stages copy only what they run.

# Rust toolchain of the builder (the workspace's rust-version or newer).
ARG RUST_VERSION=1.90
# Debian release of the builder and of the runtime images (bookworm, trixie).
ARG DEBIAN_RELEASE=bookworm
# Cargo profile: release (the default; fat LTO) or dev (a fast debug build).
ARG PROFILE=release

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
ARG PROFILE
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile "${PROFILE}" --locked -p wisp-proxy -p wisp-init -p wisp-cli \
    && dir="$([ "${PROFILE}" = dev ] && echo debug || echo "${PROFILE}")" \
    && mkdir -p /out \
    && cp "target/${dir}/wisp-proxy" "target/${dir}/wisp-await" \
          "target/${dir}/wisp-init" "target/${dir}/wisp" /out/

# The common base of the runtime images: Debian slim, nothing added.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
LABEL org.opencontainers.image.source="https://github.com/wisp-mesh/wisp" \
      org.opencontainers.image.licenses="Apache-2.0"

# ghcr.io/wisp-mesh/proxy: the sidecar. The injector runs it as uid 2102;
# wisp-await lets application containers wait for its readiness.
FROM runtime AS proxy
COPY --from=build /out/wisp-proxy /usr/local/bin/wisp-proxy
COPY --from=build /out/wisp-await /usr/local/bin/wisp-await
ENV LINKERD2_PROXY_LOG=warn,linkerd=info \
    LINKERD2_PROXY_LOG_FORMAT=plain
USER 2102:2102
ENTRYPOINT ["/usr/local/bin/wisp-proxy"]

# ghcr.io/wisp-mesh/init: the init container that installs the iptables
# redirects, with Debian's iptables (legacy and nft back ends). It runs as
# uid 65534 with NET_ADMIN and NET_RAW: the xtables binaries carry those
# file capabilities so that a non-root user can use them.
FROM runtime AS init
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables libcap2-bin \
    && setcap cap_net_raw,cap_net_admin+eip /usr/sbin/xtables-legacy-multi \
    && setcap cap_net_raw,cap_net_admin+eip /usr/sbin/xtables-nft-multi \
    && apt-get purge -y libcap2-bin \
    && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/wisp-init /usr/local/bin/wisp-init
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/wisp-init"]

# ghcr.io/wisp-mesh/controller: destination, identity and the proxy
# injector (`wisp controller`); the chart runs it as uid 2103.
FROM runtime AS controller
COPY --from=build /out/wisp /usr/local/bin/wisp
USER 2103:2103
ENTRYPOINT ["/usr/local/bin/wisp", "controller"]
