"""AWS Lambda functions of the platform: deploy-on-approval, the new-data pipeline trigger, model metrics,
the registry backup and the model mirror.

Each function is a package (standard library + boto3 only, relative imports inside it) and imports the
shared `lambdas.common` (config errors and readers, the decision log line, clients, the S3-URI parser, the
handler wrapper) by its full name. Each function's asset holds a `lambdas/` folder at its root (see
`stacks.ops_common.lambda_code`) and the handler is `lambdas.<package>.handler.handler`, so the same
import works in Lambda, in the tests and in the CDK app.
"""
