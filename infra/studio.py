"""SageMaker Studio: VPC-only in the private subnets, KMS-encrypted, one user profile per human persona."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.base import Platform


@dataclass(frozen=True)
class StudioArgs:
    vpc_id: pulumi.Output[str]
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Output[str]
    phi_key: aws.kms.Key  # notebooks hold PHI: their EFS home volumes use the PHI key
    persona_roles: dict[str, pulumi.Output[str]]  # profile name -> execution role ARN


class Studio(pulumi.ComponentResource):
    def __init__(
        self, name: str, platform: Platform, args: StudioArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clinops:infra:Studio", name, None, opts)
        cfg, child = platform.config, platform.child(self)
        locked_down = {
            "security_groups": [args.security_group_id],
            # Notebook output shared through Studio would copy PHI to an unmanaged location.
            "sharing_settings": {"notebook_output_option": "Disabled"},
        }
        self.domain = aws.sagemaker.Domain(
            "studio",
            domain_name=f"{platform.prefix}-studio",
            auth_mode="IAM",
            app_network_access_type="VpcOnly",
            vpc_id=args.vpc_id,
            subnet_ids=args.subnet_ids,
            kms_key_id=args.phi_key.arn,
            app_security_group_management="Customer",
            domain_settings={"security_group_ids": [args.security_group_id]},
            default_user_settings={**locked_down, "execution_role": args.persona_roles["data-scientist"]},
            retention_policy={"home_efs_file_system": "Retain" if cfg.retain_on_delete else "Delete"},
            tags=platform.tags(),
            opts=platform.child(self, stateful=True),
        )
        self.profiles = {
            profile: aws.sagemaker.UserProfile(
                f"profile-{profile}",
                domain_id=self.domain.id,
                user_profile_name=profile,
                user_settings={**locked_down, "execution_role": role},
                tags=platform.tags(),
                opts=child,
            )
            for profile, role in sorted(args.persona_roles.items())
        }
        self.register_outputs({"domainId": self.domain.id})
