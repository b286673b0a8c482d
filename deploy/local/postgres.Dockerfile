# PostgreSQL from Debian's packages, for scripts/test-image.sh where no image registry is
# reachable (compose.yaml uses the official postgres image otherwise). It reads the same
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB as that image.
ARG BASE=kinema-base:bookworm
FROM ${BASE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/*
COPY postgres-start.sh /usr/local/bin/postgres-start
# A new volume on the data directory takes this owner and mode.
RUN install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
CMD ["/usr/local/bin/postgres-start"]
