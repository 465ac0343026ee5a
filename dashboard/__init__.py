"""The operations dashboard: a Streamlit app over the local work folder or an AWS account.

`sources` defines what the app shows as plain dataclasses and the `DashboardSource` protocol;
`local_source` reads a local runner work folder (registry, execution records, object store, captures),
`aws_source` reads the deployed project through boto3 (SageMaker registry and pipelines, CloudWatch
metrics); `charts` turns the data into Altair charts and `app` lays out the page (`make dashboard`).
"""
