# One image for every kdoctor role: `kdoctor worker`, `coordinator`, `beat`, `flower`, `run`...
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kdoctor ./kdoctor
RUN pip install --no-cache-dir . && rm -rf /src
RUN useradd --system --uid 10001 kdoctor
# The worker needs root only for DiskIO on a hostPath it does not own; override per deployment.
USER 10001
ENTRYPOINT ["kdoctor"]
CMD ["--help"]
