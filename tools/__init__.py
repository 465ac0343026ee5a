"""Project tools run from the repository root: the IAM evaluator and the authorization matrix."""
