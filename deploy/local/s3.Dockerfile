# An S3-compatible server (moto's) from PyPI, for scripts/test-image.sh where no image
# registry is reachable (compose.yaml uses MinIO otherwise). The package index's CA, if
# it needs one, comes in as the build secret pip_cert, never stored in a layer.
ARG BASE=kinema-base:bookworm
FROM ${BASE}
RUN --mount=type=secret,id=pip_cert \
    python3 -m venv /opt/moto \
    && if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && /opt/moto/bin/pip install --no-cache-dir --disable-pip-version-check "moto[server]>=5"
USER 10001:10001
EXPOSE 9000
CMD ["/opt/moto/bin/moto_server", "-H", "0.0.0.0", "-p", "9000"]
