# One image for every txnpipe stage; the command picks the stage (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY common ./common
COPY schemas ./schemas
COPY producers ./producers
COPY stream_app ./stream_app
COPY sinks ./sinks
COPY clv ./clv
COPY txnpipe ./txnpipe
RUN pip install .
RUN useradd --create-home txnpipe
USER txnpipe
ENTRYPOINT ["txnpipe"]
CMD ["--help"]
