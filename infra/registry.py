"""Model registry: one model package group per configured model, readable by the promotion accounts."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.base import Platform, policy_document


class Registry(pulumi.ComponentResource):
    """Created only in the registry (build) account; other environments read it across accounts."""

    def __init__(self, name: str, platform: Platform, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clinops:infra:Registry", name, None, opts)
        cfg = platform.config
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
