"""What the ops functions share: configuration errors and readers, the decision log line, boto3 clients, the
S3-URI parser and the handler wrapper.

Every function imports it as `lambdas.common`, in Lambda as in the repository: the functions' asset keeps
the `lambdas/` folder at its root. Standard library and boto3 only; nothing runs at import time.
"""
