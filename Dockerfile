# syntax=docker/dockerfile:1
# Waypost's container image: a wheel is built and installed into a virtual environment in the first
# stage; the second copies only that environment onto a slim Python, so no compiler, no pip and no
# source tree reach the image. Build from the repository root:  docker build -t waypost .
# Configuration: mount a file over /etc/waypost/waypost.yaml and/or set WAYPOST_* variables
# (docs/operations.md, "Deploy").

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the wheel is made of, so a change to the tests or the docs does not rebuild it.
COPY pyproject.toml README.md ./
COPY src ./src
# The environment lives at the same path in both stages: its scripts' shebangs point into it.
# Dependencies' own test suites (numpy's, matplotlib's: about 25 MB) are never imported.
RUN python -m venv /opt/waypost \
 && /opt/waypost/bin/pip wheel --no-deps --wheel-dir /dist . \
 && /opt/waypost/bin/pip install /dist/*.whl \
 && /opt/waypost/bin/pip uninstall -y pip \
 && find /opt/waypost -type d -name tests -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/waypost/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WAYPOST_CONFIG=/etc/waypost/waypost.yaml
# A fixed uid/gid, so Kubernetes' runAsUser and a volume's ownership can name it.
RUN groupadd --system --gid 10001 waypost \
 && useradd --system --uid 10001 --gid waypost --home-dir /var/lib/waypost --shell /usr/sbin/nologin waypost \
 && install -d -o waypost -g waypost -m 0750 /var/lib/waypost
COPY --from=build /opt/waypost /opt/waypost
COPY deploy/docker/waypost.yaml /etc/waypost/waypost.yaml
USER 10001:10001
WORKDIR /var/lib/waypost
EXPOSE 4000
# The image has no curl: Python's standard library asks /health/live. A port other than 4000 is set
# with WAYPOST_SERVER__PORT, which the check reads too.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('WAYPOST_SERVER__PORT', '4000'), timeout=4)"]
ENTRYPOINT ["waypost"]
CMD ["serve"]
