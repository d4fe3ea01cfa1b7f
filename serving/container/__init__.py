"""The inference container: SageMaker's contract (`GET /ping`, `POST /invocations` on port 8080) around a model
bundle from the training pipeline (`pipelines.bundle`). See `README.md` beside this file."""
