"""Mirror approved model versions (model, evaluation report, data manifest) to an S3-compatible store."""
