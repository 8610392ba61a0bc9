# The explorer page on the embedded model: docker build -t pruning-explorer . && docker run -p 7860:7860 pruning-explorer
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    EXPLORER_MAX_MODELS=2 \
    EXPLORER_FILE_MAX_AGE_S=1800
# What visitors may load and what a request may cost: explorer/serve/access.py and explorer/serve/limits.py (app.py
# applies them here as on a Space: the queue closed to direct calls, monitoring off, bounded bodies). Set EXPLORER_MODEL_DIRS
# (folders of model directories) or EXPLORER_ALLOW_DOWNLOAD=1 (visitors' choice of an offered hub id is
# downloaded) only on purpose; EXPLORER_MODEL (a hub id) is downloaded at its first request either way.

RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=user:user . .
USER user
EXPOSE 7860
CMD ["python", "app.py"]
