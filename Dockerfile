# syntax=docker/dockerfile:1
#
# gatehouse container image: a release build in the Rust image, copied into a
# distroless runtime that has no shell, package manager or root user.
#
#   docker build -t gatehouse:0.1.0 .
#   docker run --rm -p 9001:9001 -p 8080:8080 gatehouse:0.1.0 demo

FROM rust:1-bookworm AS build
WORKDIR /src
# The commit the binary reports (`gatehouse --version`); .git is not in the context.
ARG GATEHOUSE_GIT_SHA=unknown
# Dependencies first, so editing the sources reuses the cached dependency layer.
COPY Cargo.toml Cargo.lock build.rs ./
# build.rs compiles the admin API's proto, so it comes with the manifest.
COPY proto ./proto
COPY benches ./benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
# The stub build above left fresh fingerprints: touch the real sources so they rebuild.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin gatehouse \
    && cp target/release/gatehouse /gatehouse

# glibc + libgcc (aws-lc is C), CA certificates for HTTPS JWKS, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /gatehouse /gatehouse
USER 65532:65532
EXPOSE 9001 8080
ENV GATEHOUSE_LOG_FORMAT=json
ENTRYPOINT ["/gatehouse"]
CMD ["serve"]
