"""Back up the model registry and the endpoint configuration to the artifacts bucket (see ``handler``)."""
