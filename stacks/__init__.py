"""CDK stacks of the turbofan RUL MLOps app.

Each stack lives in its own module; ``app.py`` wires them together. The foundation stack owns the
shared customer-managed KMS key that later stacks (buckets, VPC, SageMaker Studio) encrypt with.
"""
