# FreeSWITCH 1.10.12 + mod_audio_stream from their public sources: the image `make up` builds when you name
# no other (deploy/freeswitch-image). No vendor token. Every source is pinned to a commit:
#   sofia-sip v1.13.17, spandsp 0d2e6ac (newer spandsp breaks 1.10.12's mod_spandsp: V18_MODE_5BIT_4545
#   undeclared), FreeSWITCH v1.10.12 (no video: libvpx and libyuv off), mod_audio_stream ec2a781 with
#   libwsc 09d18e5 (TLS on, so wss:// stream URLs work).
# Each source comes from its <NAME>_GIT URL (build argument; only the pinned commit is fetched) unless the
# build context carries a local copy in sources/<name>: deploy/freeswitch-image puts one there for every
# FS_SRC_<NAME> you give it (a git repository, bare or not, holding the commit; or a plain directory).
# Only the modules controller/render/freeswitch.py loads are built (freeswitch-source/modules.conf). The
# runtime stage matches deploy/docker/freeswitch-tarball.Dockerfile: the same tree (/opt/freeswitch), the
# same directories and the same start. A first build takes about 30 minutes on two cores.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends autoconf automake build-essential ca-certificates cmake git \
        libtool libtool-bin pkg-config libcurl4-openssl-dev libedit-dev libevent-dev libfreetype-dev \
        libjpeg-dev libopus-dev libpcre3-dev libpng-dev libsndfile1-dev libspeex-dev libspeexdsp-dev \
        libsqlite3-dev libssl-dev libtiff-dev uuid-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
ARG SOFIA_SIP_GIT=https://github.com/freeswitch/sofia-sip.git
ARG SOFIA_SIP_COMMIT=6198851a610b7889c17e2d98fb84617bc1dd7aec
ARG SPANDSP_GIT=https://github.com/freeswitch/spandsp.git
ARG SPANDSP_COMMIT=0d2e6ac65e0e8f53d652665a743015a88bf048d4
ARG FREESWITCH_GIT=https://github.com/signalwire/freeswitch.git
ARG FREESWITCH_COMMIT=a88d069d6ffb74df797bcaf001f7e63181c07a09
ARG MOD_AUDIO_STREAM_GIT=https://github.com/amigniter/mod_audio_stream.git
ARG MOD_AUDIO_STREAM_COMMIT=ec2a781026a1c09b0c3a6161b8b896f0b9305922
ARG LIBWSC_GIT=https://github.com/amigniter/libwsc.git
ARG LIBWSC_COMMIT=09d18e5db9243a996692261a7a0839c9c346bc47
# One prefix for all of it, found through RUNPATH, never on the system library path.
ENV PREFIX=/opt/freeswitch
ENV PKG_CONFIG_PATH=/opt/freeswitch/lib/pkgconfig LDFLAGS=-Wl,-rpath,/opt/freeswitch/lib
COPY get-source modules.conf /build/
COPY sources/ /sources/
RUN /build/get-source sofia-sip "$SOFIA_SIP_GIT" "$SOFIA_SIP_COMMIT" \
    && cd /src/sofia-sip && ./bootstrap.sh \
    && ./configure --prefix="$PREFIX" --disable-static \
    && make -j"$(nproc)" && make install
RUN /build/get-source spandsp "$SPANDSP_GIT" "$SPANDSP_COMMIT" \
    && cd /src/spandsp && ./bootstrap.sh \
    && ./configure --prefix="$PREFIX" --disable-static \
    && make -j"$(nproc)" && make install
RUN /build/get-source freeswitch "$FREESWITCH_GIT" "$FREESWITCH_COMMIT" \
    && cd /src/freeswitch && grep -v '^#' /build/modules.conf > modules.conf && ./bootstrap.sh -j \
    && ./configure --prefix="$PREFIX" --disable-libvpx --disable-libyuv --disable-static \
    && make -j"$(nproc)" && make install
RUN /build/get-source mod_audio_stream "$MOD_AUDIO_STREAM_GIT" "$MOD_AUDIO_STREAM_COMMIT" \
    && rm -rf /src/mod_audio_stream/libs/libwsc \
    && /build/get-source libwsc "$LIBWSC_GIT" "$LIBWSC_COMMIT" \
    && mv /src/libwsc /src/mod_audio_stream/libs/libwsc \
    && cd /src/mod_audio_stream \
    && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DUSE_TLS=ON \
    && cmake --build build -j"$(nproc)" && cmake --install build
# The run-time tree only: no headers, archives, sample configuration or state directories of the prefix.
RUN cd "$PREFIX" \
    && rm -rf include etc var lib/pkgconfig share/doc share/man \
    && find lib -name '*.la' -delete \
    && find bin lib -type f \( -perm -u+x -o -name '*.so*' \) \
        -exec sh -c 'for f; do strip --strip-unneeded "$f" 2>/dev/null || true; done' strip {} + \
    && test -f lib/freeswitch/mod/mod_audio_stream.so

FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcurl4 libedit2 libevent-2.1-7 libevent-openssl-2.1-7 \
        libevent-pthreads-2.1-7 libjpeg62-turbo libopus0 libpcre3 libsndfile1 libspeex1 libspeexdsp1 \
        libsqlite3-0 libssl3 libtiff6 libuuid1 libfreetype6 libpng16-16 libstdc++6 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/freeswitch /opt/freeswitch
ENV PATH=/opt/freeswitch/bin:$PATH
RUN mkdir -p /var/log/freeswitch /var/lib/freeswitch/db /var/lib/freeswitch/storage \
        /var/lib/freeswitch/recordings /var/lib/freeswitch/images /var/cache/freeswitch /run/freeswitch \
        /usr/share/freeswitch/sounds /etc/freeswitch/tls \
    && if find /opt/freeswitch/bin /opt/freeswitch/lib -type f \( -perm -u+x -o -name '*.so*' \) \
            | xargs ldd 2>/dev/null | grep 'not found'; then echo "missing libraries (above)" >&2; exit 1; \
       fi \
    && freeswitch -version
CMD ["/opt/freeswitch/bin/freeswitch", "-nc", "-nf", "-nonat", \
     "-conf", "/etc/switchyard-conf/freeswitch/conf", \
     "-log", "/var/log/freeswitch", "-db", "/var/lib/freeswitch/db", "-run", "/run/freeswitch", \
     "-storage", "/var/lib/freeswitch/storage", "-recordings", "/var/lib/freeswitch/recordings", \
     "-cache", "/var/cache/freeswitch", "-temp", "/tmp", "-certs", "/etc/freeswitch/tls", \
     "-mod", "/opt/freeswitch/lib/freeswitch/mod", "-sounds", "/usr/share/freeswitch/sounds"]
