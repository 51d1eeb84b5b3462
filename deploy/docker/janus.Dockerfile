# Janus from Debian's package (1.1.2 on bookworm): SIP plugin, HTTP/WebSocket transports, Admin API and the
# sample HTTP event handler. The configuration is rendered by `switchyard render` into a volume.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends janus libjs-janus-gateway curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
EXPOSE 8088 8188 8989 7088
CMD ["janus", "--configs-folder=/etc/switchyard-conf/janus/conf"]
