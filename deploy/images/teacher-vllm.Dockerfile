# The teacher on the vLLM engine (NVIDIA GPU), built on vLLM's official image.
#   docker build -f deploy/images/teacher-vllm.Dockerfile -t relay-teacher:vllm .
#   docker run --gpus all --shm-size 8g -p 50051:50051 -v /srv/models:/models:ro \
#     -e RELAY_TEACHER_MODEL=/models/Qwen3-8B relay-teacher:vllm
# The model is a mounted folder of HF-format weights, or a model name that vLLM fetches into
# HF_HOME (give the pod a volume there). Settings come from RELAY_TEACHER_* variables.
ARG VLLM_IMAGE=vllm/vllm-openai:v0.11.0
FROM ${VLLM_IMAGE}

# Build tools for llama-cpp-python (a dependency of the package, compiled from source).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/relay
COPY pyproject.toml README.md ./
COPY cloud_teacher cloud_teacher
COPY edge_client edge_client
COPY relay_common relay_common
COPY relay_proto relay_proto
# vLLM and torch come from the base image; pip keeps them (no reinstall of what is satisfied).
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
# The project comes from the build context (no version to pin). The official image runs as
# root; the teacher runs as uid 2000, group 0 (writable caches under HOME).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[vllm]' \
    && useradd --uid 2000 --gid 0 --create-home --home-dir /home/relay relay
USER 2000:0
WORKDIR /home/relay
ENV RELAY_TEACHER_ENGINE=vllm \
    RELAY_TEACHER_HOST=0.0.0.0 \
    RELAY_TEACHER_PORT=50051 \
    RELAY_TEACHER_METRICS_PORT=9090 \
    HF_HOME=/home/relay/.cache/huggingface
EXPOSE 50051 9090
# The base image's entrypoint is vLLM's own OpenAI server; replace it.
ENTRYPOINT ["relay-teacher", "serve"]
