"""A Docker-free runner for the project's SageMaker jobs and pipeline.

Each job runs the very container script SageMaker would run, in a subprocess whose `/opt/ml` is a folder
of the runner's work directory (the `SAGEMAKER_BASE_DIR` variable of `rul.contract`).
"""
