# syntax=docker/dockerfile:1.7
# The ferrotune image: /usr/local/bin/ferrotune (the trainer) and /usr/local/bin/ferrotune-operator.
#
#   docker build -t ferrotune:0.1.0 .                                         # CPU (the default)
#   docker build -t ferrotune:0.1.0-cuda --build-arg VARIANT=cuda .           # CUDA trainer
#   docker build --build-arg VARIANT=cuda --build-arg CUDA_COMPUTE_CAP=80 .   # for A100s instead of H100s
#
# cpu:  built on the official Rust image (Debian bookworm), run on distroless/cc (glibc, libstdc++).
# cuda: built on nvidia/cuda's devel image with rustup, `--features cuda` for the trainer, run on the
#       matching nvidia/cuda runtime image (cuBLAS, cuRAND, NVRTC, NCCL; the driver comes from the node).
# Both run as the non-root user 65532. No model is baked in: the embedded default (SmolLM2-135M-Instruct,
# scripts/fetch-model.sh) and any other model come from a volume or the Hugging Face Hub at run time.
ARG VARIANT=cpu
ARG RUST_VERSION=1.95
ARG CUDA_VERSION=13.0.2
ARG CUDA_OS=ubuntu24.04

# ---- build stages -------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build-cpu
ENV FEATURES=""

FROM nvidia/cuda:${CUDA_VERSION}-devel-${CUDA_OS} AS build-cuda
ARG RUST_VERSION
# GPU generation the kernels are compiled for (there is no GPU to ask during `docker build`):
# 90 = H100/H200, 80 = A100, 89 = L4/L40, 86 = RTX A-series.
ARG CUDA_COMPUTE_CAP=90
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl build-essential pkg-config \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
      | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "${RUST_VERSION}"
# cudarc links -lcuda: the toolkit's stub stands in for the driver at link time.
ENV CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP} \
    LIBRARY_PATH=/usr/local/cuda/lib64/stubs \
    FEATURES="ferrotune/cuda"

FROM build-${VARIANT} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p ferrotune -p ferrotune-operator ${FEATURES:+--features "$FEATURES"} \
 && mkdir -p /out \
 && cp target/release/ferrotune target/release/ferrotune-operator /out/

# ---- runtime stages -----------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime-cpu

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${CUDA_OS} AS runtime-cuda
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --create-home --home-dir /home/nonroot --shell /usr/sbin/nologin nonroot
ENV HOME=/home/nonroot

FROM runtime-${VARIANT}
ARG VARIANT
LABEL org.opencontainers.image.title="ferrotune" \
      org.opencontainers.image.description="ferrotune trainer and Kubernetes operator (${VARIANT})" \
      org.opencontainers.image.source="https://github.com/ferrotune/ferrotune" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ferrotune /out/ferrotune-operator /usr/local/bin/
USER 65532:65532
WORKDIR /home/nonroot
CMD ["/usr/local/bin/ferrotune", "--help"]
