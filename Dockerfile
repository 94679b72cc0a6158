# One image for every kdoctor role: `kdoctor worker`, `coordinator`, `beat`, `flower`, `run`...
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kdoctor ./kdoctor
RUN pip install --no-cache-dir . && rm -rf /src
RUN useradd --system --uid 10001 kdoctor
# Never root: deploy/base's worker DaemonSet hands its DiskIO hostPath to this user first.
USER 10001
ENTRYPOINT ["kdoctor"]
CMD ["--help"]
