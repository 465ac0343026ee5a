"""Training-pipeline starter: one execution per burst of new raw files, per schedule tick and per drift
alarm, keyed by the data version of its input (handler: `lambdas.start_pipeline.handler.handler`)."""
