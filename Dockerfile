# The Walkout image: the store server (`walkout serve`) and the simulated edge (`walkout demo-edge`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    YOLO_OFFLINE=1

WORKDIR /src
# Only what the package needs, so a change to docs or tests does not rebuild the install layer.
COPY pyproject.toml README.md ./
COPY edge ./edge
COPY store_server ./store_server
COPY sensors ./sensors
COPY sim_data ./sim_data
RUN pip install . && rm -rf /src

# Run as an unprivileged user; its home holds run-time files (receipts, SQLite when no URL is set).
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/walkout --shell /usr/sbin/nologin walkout
USER walkout
WORKDIR /var/lib/walkout

EXPOSE 8000
CMD ["walkout", "serve"]
