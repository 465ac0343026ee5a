"""Model-quality metrics: publishes the evaluation of each finished training-pipeline execution to CloudWatch
(handler: `lambdas.publish_model_metrics.handler.handler`)."""
