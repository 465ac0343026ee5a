"""AWS Lambda functions of the platform: deploy-on-approval, the new-data pipeline trigger, model metrics.

Each function is a self-contained package (standard library + boto3 only, relative imports inside it) so
the CDK can ship this folder as the asset and name the handler `<package>.handler.handler`.
"""
