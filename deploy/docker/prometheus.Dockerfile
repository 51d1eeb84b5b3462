# Prometheus from Debian's package (2.42 on bookworm), for machines that cannot pull prom/prometheus: CI's
# compose tier (deploy/compose.ci.yml) scrapes the stack with it. Same flags, paths and healthcheck (wget) as
# the official image, so it can stand in for prom/prometheus unchanged.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus wget ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o prometheus -g prometheus /prometheus
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
