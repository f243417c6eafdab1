# The coupang-etl image for deploy/k8s (not built by the test suite: no container engine on CI).
#   docker build -t ghcr.io/coupang-etl/coupang-etl:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin coupang-etl

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/coupang-etl /usr/local/bin/coupang-etl
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/coupang-etl"]
