"""CDK stacks of the turbofan RUL MLOps platform.

One small stack per deployment concern (storage and keys, network, IAM, Studio, alerts, cost), each
taking the typed settings sub-model and the typed resources (key, bucket, role, network) it needs.
:func:`stacks.platform.build_platform` wires them together and returns a :class:`stacks.platform.Platform`,
the seam through which the ML stack (model registry and pipeline) receives what it uses.
"""
