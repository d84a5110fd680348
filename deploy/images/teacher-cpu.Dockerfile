# The teacher on the llama.cpp engine (CPU): any GGUF, or the embedded Gemma-3-270M by default.
#   docker build -f deploy/images/teacher-cpu.Dockerfile -t relay-teacher:cpu .
#   docker run -p 50051:50051 -v /srv/models:/models:ro \
#     -e RELAY_TEACHER_MODEL=/models/qwen3-8b-q4_k_m.gguf relay-teacher:cpu
# Settings come from RELAY_TEACHER_* variables (relay-teacher serve --help lists them).

# llama-cpp-python is published as source only: compile its wheel in a throw-away stage.
FROM python:3.12-slim-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cloud_teacher cloud_teacher
COPY edge_client edge_client
COPY relay_common relay_common
COPY relay_proto relay_proto
# Portable CPU code (not -march=native of the build machine); AVX2 runs on any x86 cloud VM.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim-bookworm
# libgomp: llama.cpp's OpenMP threads.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/relay_decoding-*.whl \
    && rm -rf /wheels
# Non-root: uid 2000, group 0, so an arbitrary uid in group 0 (OpenShift) works too.
RUN useradd --uid 2000 --gid 0 --create-home --home-dir /home/relay relay
USER 2000:0
WORKDIR /home/relay
# Inside a pod the teacher must listen on all interfaces (probes and the proxy come from outside).
ENV RELAY_TEACHER_HOST=0.0.0.0 \
    RELAY_TEACHER_PORT=50051 \
    RELAY_TEACHER_METRICS_PORT=9090
EXPOSE 50051 9090
ENTRYPOINT ["relay-teacher", "serve"]
