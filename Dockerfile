# One image with every binary of the workspace; docker-compose.yml and deploy/k8s pick the command.
#
# Layers: (1) the manifests and the lock file with stub sources, building only the dependencies, so a source
# change does not rebuild them; (2) the real sources. The runtime image runs as a non-root user and checks
# itself with the gateway's own `healthcheck` subcommand (no curl in the image).
FROM rust:1.95-bookworm AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never
# The gateway binaries of the image (`new-gateway` adds to this list and a manifest line below).
ARG GATEWAYS="bff-web bff-mobile bff-partner bff-tv"
COPY Cargo.toml Cargo.lock ./
# Profile-guided optimisation: the profile bench/pgo recorded under a training load (bench/README.md) guides
# the release build of every crate, dependencies included, so it is in place before the dependency layer.
COPY bff-web/pgo/bff-web.profdata bff-web/pgo/
ENV RUSTFLAGS="-Cprofile-use=/src/bff-web/pgo/bff-web.profdata"
COPY bff-core/Cargo.toml bff-core/
COPY bff-web/Cargo.toml bff-web/
COPY bff-mobile/Cargo.toml bff-mobile/
COPY bff-partner/Cargo.toml bff-partner/
COPY bff-tv/Cargo.toml bff-tv/
# new-gateway: manifests above this line
COPY shared-schemas/Cargo.toml shared-schemas/
COPY mock-services/Cargo.toml mock-services/
COPY dev-stack/Cargo.toml dev-stack/
COPY tests/Cargo.toml tests/
# Stub targets so cargo can resolve and build the dependency graph alone.
RUN for crate in bff-core $GATEWAYS shared-schemas mock-services dev-stack tests; do \
        mkdir -p "$crate/src" && echo 'fn main() {}' > "$crate/src/main.rs" && touch "$crate/src/lib.rs"; \
    done \
    && mkdir -p bff-core/benches && echo 'fn main() {}' > bff-core/benches/hot_paths.rs \
    && cargo build --release --locked -p mock-services $(for g in $GATEWAYS; do printf -- '-p %s ' "$g"; done) \
    && rm -rf bff-*/src shared-schemas/src mock-services/src dev-stack/src tests/src \
    && rm -rf target/release/.fingerprint/bff-* target/release/.fingerprint/shared-schemas-* \
              target/release/.fingerprint/mock-services-* target/release/.fingerprint/dev-stack-* \
              target/release/.fingerprint/tests-*
COPY . .
RUN cargo build --release --locked --bin mock-services $(for g in $GATEWAYS; do printf -- '--bin %s ' "$g"; done) \
    && mkdir /out && cp target/release/mock-services $(for g in $GATEWAYS; do printf 'target/release/%s ' "$g"; done) /out/

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home bff
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
# Gateways: the admin listener's /healthz through the binary itself (set BFF_ADMIN__LISTEN as for serving).
# The mocks service overrides this healthcheck in docker-compose.yml.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["bff-web", "healthcheck"]
