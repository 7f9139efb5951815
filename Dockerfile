# The pipeline image: TFX's own 1.15.1 image (Python 3.10, TFX, TF, Beam, TFMA,
# TFT and the kfp SDK, all at the versions this project pins) plus this
# project. Kubeflow runs every component in it, and the Trainer's TFJob
# replicas too (`python -m components.replica`).
#
#   docker build -t <registry>/taxi-estimator-pipeline:<tag> .
#   docker push <registry>/taxi-estimator-pipeline:<tag>
#
# and set `kubeflow.image` to the same name.
FROM tensorflow/tfx:1.15.1

WORKDIR /pipeline
COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY components components
COPY trainer_module trainer_module
COPY bench bench
COPY data data
# Editable, so the shipped config finds the data and schema under /pipeline.
# --no-deps: the base image already has the pinned stack (pydantic 1.x comes
# with its kfp); only pyyaml and psutil may be missing from it.
RUN python -m pip install --no-cache-dir pyyaml psutil "pydantic<2" \
 && python -m pip install --no-cache-dir --no-deps -e . \
 && python -c "import pipeline.config, components.replica, trainer_module"
