"""What the operator reads after a run: the report, runs and models, TensorBoard, predictions."""
