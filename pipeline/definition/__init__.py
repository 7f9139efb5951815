"""The pipeline definition and the runners that execute it (local, Beam, Kubeflow)."""
