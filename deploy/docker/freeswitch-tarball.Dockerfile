# FreeSWITCH 1.10.12 + mod_audio_stream ec2a781 from a relocatable build tarball (../shared/freeswitch's
# freeswitch-1.10.12-bookworm-amd64.tar.xz, top directory `freeswitch/`), a drop-in for the SignalWire image
# (deploy/docker/freeswitch.Dockerfile): the same user (root), configuration, log, db and recordings paths
# and `-nc -nf -nonat` start. The tarball is never part of the repository: the build context is a directory
# holding only it, made outside the tree (deploy/freeswitch-image and .ci/compose-tier do):
#   ctx=$(mktemp -d) && ln "$TARBALL" "$ctx/" \
#       && docker build -f deploy/docker/freeswitch-tarball.Dockerfile "$ctx"
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG FS_TARBALL=freeswitch-1.10.12-bookworm-amd64.tar.xz
ENV DEBIAN_FRONTEND=noninteractive
# The build's runtime libraries (`fsrun deps`); the rest (sofia-sip 1.13, spandsp, libfreeswitch) ship inside
# the tree and are found through its RUNPATH ($ORIGIN/../lib), never on the system library path.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcurl4 libedit2 libevent-2.1-7 libevent-pthreads-2.1-7 \
        libjpeg62-turbo libopus0 libpcre3 libsndfile1 libspeex1 libspeexdsp1 libsqlite3-0 libssl3 libtiff6 \
        libuuid1 libfreetype6 libpng16-16 libstdc++6 zlib1g \
    && rm -rf /var/lib/apt/lists/*
# ADD unpacks a local .tar.xz itself (no xz-utils, and the archive is in no layer):
# /opt/freeswitch/{bin,lib,share}. /opt/switchyardfs, the build's own prefix, links to it, so its compiled-in
# defaults name real places.
ADD ${FS_TARBALL} /opt/
ENV PATH=/opt/freeswitch/bin:$PATH
# Debian's (and so the SignalWire image's) directories; the flags below point FreeSWITCH at them. Then every
# binary and module must find its libraries (ldd), and FreeSWITCH must run.
RUN ln -s /opt/freeswitch /opt/switchyardfs \
    && mkdir -p /var/log/freeswitch /var/lib/freeswitch/db /var/lib/freeswitch/storage \
        /var/lib/freeswitch/recordings /var/lib/freeswitch/images /var/cache/freeswitch /run/freeswitch \
        /usr/share/freeswitch/sounds /etc/freeswitch/tls \
    && if find /opt/freeswitch/bin /opt/freeswitch/lib -type f \( -perm -u+x -o -name '*.so*' \) \
            | xargs ldd 2>/dev/null | grep 'not found'; then echo "missing libraries (above)" >&2; exit 1; \
       fi \
    && freeswitch -version
# The configuration is rendered by `switchyard render` into a volume mounted at /etc/switchyard-conf. Every
# other directory is named, as FreeSWITCH's FHS layout (--enable-fhs, Debian's packages) has them. Without
# CAP_SYS_NICE FreeSWITCH logs that it cannot set SCHED_FIFO or its nice level (switch.c set_auto_priority)
# and runs on.
CMD ["/opt/freeswitch/bin/freeswitch", "-nc", "-nf", "-nonat", \
     "-conf", "/etc/switchyard-conf/freeswitch/conf", \
     "-log", "/var/log/freeswitch", "-db", "/var/lib/freeswitch/db", "-run", "/run/freeswitch", \
     "-storage", "/var/lib/freeswitch/storage", "-recordings", "/var/lib/freeswitch/recordings", \
     "-cache", "/var/cache/freeswitch", "-temp", "/tmp", "-certs", "/etc/freeswitch/tls", \
     "-mod", "/opt/freeswitch/lib/freeswitch/mod", "-sounds", "/usr/share/freeswitch/sounds"]
