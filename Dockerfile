# syntax=docker/dockerfile:1
# dns-sidecar: built from the same pins the tests ran with (constraints.txt).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/dns-sidecar
# Dependencies first (a layer that survives code changes), then the package itself.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/dns-sidecar/bin/pip install --no-cache-dir --no-compile -c constraints.txt -r requirements.txt
COPY README.md LICENSE ./
COPY sidecar ./sidecar
RUN /opt/dns-sidecar/bin/pip install --no-cache-dir --no-compile --no-deps . \
 && /opt/dns-sidecar/bin/pip uninstall --yes pip setuptools wheel \
 && python -m compileall -q -j 0 /opt/dns-sidecar/lib  # byte code made once, at build time

FROM ${PYTHON_IMAGE}
# `make image` passes the version from pyproject.toml, the git remote and the commit.
ARG VERSION=unknown
ARG SOURCE=""
ARG REVISION=""
LABEL org.opencontainers.image.title="dns-sidecar" \
      org.opencontainers.image.description="DNS provider backend for the Kubernetes DNS operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}"
ENV PATH=/opt/dns-sidecar/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DNS_SIDECAR_LOG_FORMAT=json
COPY --from=build /opt/dns-sidecar /opt/dns-sidecar
# A numeric non-root user: runAsNonRoot can verify it; nothing is written outside /tmp.
USER 65532:65532
WORKDIR /tmp
EXPOSE 7100 8080
ENTRYPOINT ["dns-sidecar", "serve"]
