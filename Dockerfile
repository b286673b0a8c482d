# kinema's container image: `kinema serve` on embedded defaults (SQLite and local files
# under /var/lib/kinema), as a non-root user, with a health check.
#
#   docker build -t kinema .
#   docker run -p 8000:8000 -v kinema-data:/var/lib/kinema kinema
#   docker exec <container> kinema keys create me        # a key for the API
#
# GPU: give a CUDA base (with Python 3.11+, or apt to install it) and the gpu extra; run
# workers with `--gpus all`:
#
#   docker build -t kinema:gpu --build-arg BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#       --build-arg EXTRAS=scale,gpu .
#
# Behind a package proxy with its own CA, pass the CA as a build secret: it is mounted for
# the one pip step and never stored in a layer (DOCKER_BUILDKIT=1):
#
#   docker build --secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt -t kinema .
#
# scripts/test-image.sh builds this on a Debian base made with debootstrap (no registry).
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS python
# Python 3.11+ with venv: debootstrap's base has it; the slim and CUDA images get it here.
RUN if ! python3 -c "import sys, ensurepip, venv; assert sys.version_info >= (3, 11)" 2>/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi

FROM python AS build
ARG EXTRAS=scale
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN --mount=type=secret,id=pip_cert \
    python3 -m venv /opt/kinema \
    && if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && /opt/kinema/bin/pip install --no-cache-dir --disable-pip-version-check "/src[${EXTRAS}]" \
    && /opt/kinema/bin/kinema --help > /dev/null

FROM python
COPY --from=build /opt/kinema /opt/kinema
ENV PATH=/opt/kinema/bin:$PATH \
    HOME=/var/lib/kinema \
    KINEMA_DATA_DIR=/var/lib/kinema \
    PYTHONUNBUFFERED=1
RUN mkdir -p /var/lib/kinema && chown 10001:10001 /var/lib/kinema
USER 10001:10001
WORKDIR /var/lib/kinema
VOLUME /var/lib/kinema
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/kinema/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["kinema", "serve", "--host", "0.0.0.0", "--port", "8000"]
