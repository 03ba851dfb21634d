# syntax=docker/dockerfile:1
# One image for every candleflow component on AWS; the ECS task definitions (infra/cdk/compute.py)
# choose the command:
#   producer  candleflow produce --source binance
#   sampler   candleflow sample
#   worker    prefect worker start --pool <the work pool of prefect.yaml> --type process
#   api       candleflow api                      (the default below)
# Build: docker build -t candleflow .   (`cdk deploy` builds and pushes it itself)

FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir "uv>=0.9,<1"
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev

FROM python:3.11-slim
# On ECS the root filesystem is read-only: HOME (/tmp, the user's home) is a task volume.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GX_ANALYTICS_ENABLED=false \
    CANDLEFLOW_API_HOST=0.0.0.0
RUN useradd --system --uid 10001 --no-create-home --home-dir /tmp candleflow
WORKDIR /app
COPY --from=build /app /app
USER 10001
EXPOSE 8080
CMD ["candleflow", "api"]
