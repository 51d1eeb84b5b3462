# CI only: the FreeSWITCH emulator (tests/fsemu) in FreeSWITCH's place, for the compose smoke test.
ARG SWITCHYARD_IMAGE=switchyard/switchyard:dev
FROM ${SWITCHYARD_IMAGE}
USER root
RUN pip install -q 'wsproto>=1.2'
COPY tests/__init__.py /opt/fsemu/tests/__init__.py
COPY tests/fsemu /opt/fsemu/tests/fsemu
USER switchyard
WORKDIR /opt/fsemu
CMD ["python", "-m", "tests.fsemu"]
