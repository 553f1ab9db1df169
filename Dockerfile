FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HTTP_HOST=0.0.0.0 HTTP_PORT=8080 DATABASE_PATH=/data/database.db LOG_FORMAT=json

WORKDIR /srv
COPY pyproject.toml setup.py README.md ./
COPY app ./app
COPY static ./static
RUN pip install --no-cache-dir ".[fast,scale]" \
    && useradd --system --uid 10001 executor \
    && mkdir -p /data && chown executor /data
USER executor
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app"]
