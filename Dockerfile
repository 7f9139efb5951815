# syntax=docker/dockerfile:1.4
# The pipeline image: Kubeflow runs every component in it (v2: `python -m
# pipeline.definition.kfp_entrypoint`), and the Trainer's TFJob replicas too
# (`python -m components.replica`). It installs exactly
# requirements.lock (what `make install` installs), so a pod computes what a
# local run computes, plus the user's model code from the build context
# `usercode`. Build it with `python -m pipeline image` (or `make image`),
# which names that context from the config's `module` and `code_dir`.
FROM python:3.10.13-slim

WORKDIR /pipeline
ENV PYTHONDONTWRITEBYTECODE= PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock ./
RUN python -m pip install --no-cache-dir "uv==0.13.9" \
 && uv pip install --system --no-cache --compile-bytecode --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY components components
COPY trainer_module trainer_module
COPY bench bench
COPY data data
# Editable: the shipped config finds the bundled schema under /pipeline.
RUN uv pip install --system --no-cache --no-deps -e .

# The user's code: the folder holding the package named by the config's
# `module` (empty for the bundled trainer_module, which is installed above).
COPY --from=usercode . /pipeline/usercode/
ENV PYTHONPATH=/pipeline/usercode
ARG MODULE=trainer_module
RUN python -c "import importlib, components.replica, pipeline.config, pipeline.definition.kfp_entrypoint; importlib.import_module('${MODULE}')"
