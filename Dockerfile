# ArgoBox's HTTP daemon in a container. compose.yaml beside this file shows how to run it.
#
#   docker build -t argobox .
#   docker build --build-arg BASE=my-debian:bookworm -t argobox .      # a base of your own
#
# BASE is any Debian 12 (bookworm) image; python3 and python3-venv are installed from Debian when it lacks them.
# PIP_INDEX_URL, PIP_FIND_LINKS and PIP_NO_INDEX are handed to pip, e.g. to build from a local wheelhouse with no
# other network (scripts/container-image.sh does that for the tests).
#
# The image runs as the unprivileged user `argobox` (uid and gid 10001), reads its configuration from
# /etc/argobox/argobox.toml (mount it read-only) and keeps its store on the volume /var/lib/argobox: point
# `[storage] path` there, e.g. path = "/var/lib/argobox/argobox.db". To reach the Docker engine the container
# needs the socket and the socket's group (compose.yaml: `group_add`).
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS python
RUN if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi

FROM python AS build
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The dependencies first, in a layer of their own: a change to ArgoBox's code alone does not reinstall them.
COPY pyproject.toml /src/
RUN python3 -m venv /opt/argobox \
    && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        >/src/requirements.txt \
    && /opt/argobox/bin/pip install --quiet --requirement /src/requirements.txt
COPY README.md LICENSE /src/
COPY argobox /src/argobox
RUN /opt/argobox/bin/pip install --quiet --no-deps /src

FROM python
COPY --from=build /opt/argobox /opt/argobox
COPY contrib/docker/healthcheck.py /usr/local/lib/argobox/healthcheck.py
RUN groupadd --system --gid 10001 argobox \
    && useradd --system --uid 10001 --gid argobox --home-dir /var/lib/argobox --no-create-home \
        --shell /usr/sbin/nologin argobox \
    && install -d -o argobox -g argobox -m 0700 /var/lib/argobox \
    && install -d -m 0755 /etc/argobox
ENV PATH=/opt/argobox/bin:$PATH \
    ARGOBOX_CONFIG=/etc/argobox/argobox.toml \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER argobox:argobox
WORKDIR /var/lib/argobox
VOLUME ["/var/lib/argobox"]
EXPOSE 8765
# Asks the daemon itself (GET /healthz: it answers and its store can be read) at the address its command line gives.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/argobox/bin/python", "/usr/local/lib/argobox/healthcheck.py"]
ENTRYPOINT ["argobox"]
# Inside the container the daemon must listen beyond its own loopback for a published port to reach it; the
# startup warning about plain HTTP is accurate: publish the port on the host's loopback (compose.yaml does) or
# put a TLS-terminating proxy in front.
CMD ["serve", "--http", "0.0.0.0:8765", "--allow-non-loopback"]
