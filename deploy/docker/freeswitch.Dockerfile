# FreeSWITCH 1.10 from SignalWire's official Debian packages, plus mod_audio_stream built from its upstream
# repository at a pinned commit: an option for those who hold a SignalWire personal access token (the
# default image is built from public sources, deploy/docker/freeswitch-source.Dockerfile). The token is
# passed as a BuildKit secret (id=signalwire_token) and never stored in a layer:
#   DOCKER_BUILDKIT=1 docker build --secret id=signalwire_token,src=<file> -f deploy/docker/freeswitch.Dockerfile .
# (deploy/freeswitch-image does this when SIGNALWIRE_TOKEN is set). CI cannot build this image (no token,
# and the repository is not reachable from CI).
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS repo
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
    && rm -rf /var/lib/apt/lists/*
# The repository's key and list; the token is only read from the secret mount, inside each RUN.
RUN --mount=type=secret,id=signalwire_token \
    curl -fsS -u "signalwire:$(cat /run/secrets/signalwire_token)" \
        -o /usr/share/keyrings/signalwire-freeswitch-repo.gpg \
        https://freeswitch.signalwire.com/repo/deb/debian-release/signalwire-freeswitch-repo.gpg \
    && echo "deb [signed-by=/usr/share/keyrings/signalwire-freeswitch-repo.gpg] https://freeswitch.signalwire.com/repo/deb/debian-release/ bookworm main" \
        > /etc/apt/sources.list.d/freeswitch.list

# The modules the rendered modules.conf.xml loads (G722 comes with mod_spandsp).
ENV FS_PACKAGES="freeswitch freeswitch-mod-console freeswitch-mod-logfile freeswitch-mod-event-socket \
    freeswitch-mod-sofia freeswitch-mod-loopback freeswitch-mod-commands freeswitch-mod-dptools \
    freeswitch-mod-dialplan-xml freeswitch-mod-conference freeswitch-mod-spandsp freeswitch-mod-opus \
    freeswitch-mod-sndfile freeswitch-mod-native-file freeswitch-mod-tone-stream freeswitch-mod-xml-curl"

FROM repo AS build
# mod_audio_stream at the commit the wire captures were taken with (its README lists the build deps).
ARG MOD_AUDIO_STREAM_COMMIT=ec2a781026a1c09b0c3a6161b8b896f0b9305922
RUN --mount=type=secret,id=signalwire_token \
    printf 'machine freeswitch.signalwire.com login signalwire password %s\n' \
        "$(cat /run/secrets/signalwire_token)" > /etc/apt/auth.conf.d/signalwire.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends libfreeswitch-dev libssl-dev zlib1g-dev libevent-dev \
        libspeexdsp-dev cmake g++ make pkg-config git \
    && rm -f /etc/apt/auth.conf.d/signalwire.conf && rm -rf /var/lib/apt/lists/*
RUN git clone https://github.com/amigniter/mod_audio_stream.git /src/mod_audio_stream \
    && cd /src/mod_audio_stream \
    && git checkout "$MOD_AUDIO_STREAM_COMMIT" \
    && git submodule update --init --recursive \
    && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DUSE_TLS=ON \
    && cmake --build build -j"$(nproc)" \
    && DESTDIR=/out cmake --install build

FROM repo
RUN --mount=type=secret,id=signalwire_token \
    printf 'machine freeswitch.signalwire.com login signalwire password %s\n' \
        "$(cat /run/secrets/signalwire_token)" > /etc/apt/auth.conf.d/signalwire.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends $FS_PACKAGES libevent-2.1-7 libevent-openssl-2.1-7 \
        libspeexdsp1 \
    && rm -f /etc/apt/auth.conf.d/signalwire.conf && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /
# The configuration is rendered by `switchyard render` into a volume mounted at /etc/switchyard-conf.
CMD ["freeswitch", "-nc", "-nf", "-nonat", "-conf", "/etc/switchyard-conf/freeswitch/conf", \
     "-log", "/var/log/freeswitch", "-db", "/var/lib/freeswitch/db"]
