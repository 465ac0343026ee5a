"""Deploy-on-approval: keeps the serving endpoint, its data-quality monitor and the champion prefix on the
newest approved version of the model package group (handler: `lambdas.deploy_on_approval.handler.handler`)."""
