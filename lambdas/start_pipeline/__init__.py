"""New-data trigger: starts one training-pipeline execution per burst of raw files
(handler: `start_pipeline.handler.handler`)."""
