"""AWS Lambda functions of the platform: deploy-on-approval, the new-data pipeline trigger, model metrics,
the registry backup and the model mirror.

Each function is a package (standard library + boto3 only, relative imports inside it) and shares
`common/` (config errors and readers, the decision log line, clients, the S3-URI parser, the handler
wrapper) through its `shared` module. The CDK ships this folder as the asset and names the handler
`<package>.handler.handler`, so in Lambda `common` is a top-level package; `shared` imports it under
whichever name it has (all five `shared.py` are identical; a test keeps them so).
"""
