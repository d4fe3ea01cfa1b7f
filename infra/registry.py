"""Model registry: one model package group per configured model, readable by the promotion accounts."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra.base import Platform, policy_document

INFERENCE_REPOSITORY = "clinops-inference"
STEPS_REPOSITORY = "clinops-pipeline-steps"


def image_uri(registry_account: str, region: str, tag: str, repository: str = INFERENCE_REPOSITORY) -> str:
    return f"{registry_account}.dkr.ecr.{region}.amazonaws.com/{repository}:{tag}"


class Registry(pulumi.ComponentResource):
    """Created only in the registry (build) account; other environments read it across accounts."""

    def __init__(
        self, name: str, platform: Platform, artifacts_key: aws.kms.Key, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clinops:infra:Registry", name, None, opts)
        cfg = platform.config
        # One inference image serves every model (it loads the artifact its model package names); one step
        # image runs every pipeline step. Only promoted inference images are pulled by other accounts.
        self.repositories = {
            repo: self._repository(platform, repo, artifacts_key, shared=repo == INFERENCE_REPOSITORY)
            for repo in (INFERENCE_REPOSITORY, STEPS_REPOSITORY)
        }
        self.groups: dict[str, aws.sagemaker.ModelPackageGroup] = {}
        for model in cfg.models:
            group = aws.sagemaker.ModelPackageGroup(
                f"{model.name}-group",
                model_package_group_name=model.name,
                model_package_group_description=model.description,
                tags=platform.tags(**{"clinops:model": model.name}),
                opts=platform.child(self, stateful=True),
            )
            self.groups[model.name] = group
            if cfg.reader_accounts:
                base = f"arn:aws:sagemaker:{platform.region}:{platform.account}"
                aws.sagemaker.ModelPackageGroupPolicy(
                    f"{model.name}-group-policy",
                    model_package_group_name=group.model_package_group_name,
                    resource_policy=policy_document(
                        {
                            "Sid": "PromotionAccountsRead",
                            "Effect": "Allow",
                            "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in cfg.reader_accounts]},
                            "Action": [
                                "sagemaker:DescribeModelPackage",
                                "sagemaker:DescribeModelPackageGroup",
                                "sagemaker:ListModelPackages",
                            ],
                            "Resource": [
                                f"{base}:model-package-group/{model.name}",
                                f"{base}:model-package/{model.name}/*",
                            ],
                        }
                    ),
                    opts=platform.child(self),
                )
        self.register_outputs({name: g.arn for name, g in self.groups.items()})

    def _repository(self, platform: Platform, name: str, key: aws.kms.Key, shared: bool) -> aws.ecr.Repository:
        repository = aws.ecr.Repository(
            name,
            name=name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}],
            force_delete=False,
            tags=platform.tags(),
            opts=platform.child(self, stateful=True),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": "keep the 50 newest images",
                            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 50},
                            "action": {"type": "expire"},
                        }
                    ]
                },
                sort_keys=True,
            ),
            opts=platform.child(self),
        )
        if shared and platform.config.reader_accounts:
            aws.ecr.RepositoryPolicy(
                f"{name}-policy",
                repository=repository.name,
                policy=policy_document(
                    {
                        "Sid": "PromotionAccountsPull",
                        "Effect": "Allow",
                        "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in platform.config.reader_accounts]},
                        "Action": [
                            "ecr:BatchCheckLayerAvailability",
                            "ecr:BatchGetImage",
                            "ecr:GetDownloadUrlForLayer",
                        ],
                    }
                ),
                opts=platform.child(self),
            )
        return repository
