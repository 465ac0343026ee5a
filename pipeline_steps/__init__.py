"""The SageMaker pipeline of the project as code: names, config, code bundle, offline session, steps.

`render.render_definition(config)` gives the pipeline definition JSON, offline and deterministic;
`python -m pipeline_steps render --out definition.json` writes it. Nothing here reads the environment,
makes an AWS client or touches files at import time.
"""
