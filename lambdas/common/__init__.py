"""What the ops functions share: configuration errors and readers, the decision log line, boto3 clients, the
S3-URI parser and the handler wrapper.

The CDK ships the whole `lambdas/` folder as each function's code, with `lambdas/` as the code root, so in
Lambda this package is the top-level `common`; in the repository (tests, the CDK app) it is
`lambdas.common`. Each function package imports it in one place, its `shared` module, which picks the
spelling for where it runs. Standard library and boto3 only; nothing runs at import time.
"""
