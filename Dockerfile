# syntax=docker/dockerfile:1
# The image the Helm chart (helm/conea-monitor) runs:
#   docker build -t ghcr.io/conea/conea-monitor:0.1.0 .
# Non-root (uid 10001), fine with a read-only root file system: the only writable
# places it needs are the data directory (a volume) and /tmp (an emptyDir in the chart).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/conea-monitor
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN /opt/conea-monitor/bin/pip install . \
 && /opt/conea-monitor/bin/python -m compileall -q /opt/conea-monitor

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="conea-monitor" \
      org.opencontainers.image.description="Monitoring and alert-response service" \
      org.opencontainers.image.source="https://github.com/conea/conea-monitor" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 conea \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin conea \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/conea-monitor
COPY --from=build /opt/conea-monitor /opt/conea-monitor
# The bundled defaults, for `docker run` without a chart; the chart mounts its own
# config at /etc/conea-monitor/config and policies at /etc/conea-monitor/policies.
COPY config /app/config
COPY remediations /app/remediations
ENV PATH=/opt/conea-monitor/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    CONEA_MONITOR_DATA_DIR=/var/lib/conea-monitor
VOLUME ["/var/lib/conea-monitor"]
USER 10001:10001
EXPOSE 9115
# Exec form: conea-monitor is PID 1 and gets SIGTERM (graceful stop) and SIGHUP (reload).
ENTRYPOINT ["conea-monitor"]
CMD ["serve", "--config", "/app/config/conea-monitor.yml", "--host", "0.0.0.0", "--port", "9115"]
