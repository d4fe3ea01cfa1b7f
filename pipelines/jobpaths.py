"""Where SageMaker jobs find their inputs and leave their outputs: one source for the step entry points (which read
and write there) and the pipeline definitions (which mount S3 there)."""

PROCESSING_ROOT = "/opt/ml/processing"
