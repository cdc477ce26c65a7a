# One image with every binary of the workspace; docker-compose.yml picks the command per service.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin mock-services --bin bff-web --bin bff-mobile --bin bff-partner

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 bff
COPY --from=build /src/target/release/mock-services /src/target/release/bff-web \
     /src/target/release/bff-mobile /src/target/release/bff-partner /usr/local/bin/
USER bff
