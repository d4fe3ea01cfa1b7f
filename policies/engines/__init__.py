"""Third-party scanners run over the same plan as our own rules: checkov (Terraform-plan view) and cdk-nag
(CloudFormation view). Each returns an `EngineReport` whose results sit on Pulumi URNs."""
