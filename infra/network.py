"""An isolated VPC: private subnets only, no internet or NAT gateway, AWS APIs through VPC endpoints."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from clinops.config import (
    EXECUTE_API_ENDPOINT_SERVICE,
    INTERFACE_ENDPOINT_SERVICES,
    MLFLOW_ENDPOINT_SERVICE,
    S3_ENDPOINT_SERVICE,
)
from clinops.names import tracking_server_arn
from infra.base import Platform, policy_document
from infra.logs import delivery_role, encrypted_log_group

# ECR serves image layers from this AWS-owned bucket; without it no container starts in a VPC with no NAT.
ECR_LAYER_BUCKET = "prod-{region}-starport-layer-bucket"


@dataclass(frozen=True)
class NetworkArgs:
    logs_key: aws.kms.Key
    bucket_arns: list[pulumi.Output[str]]  # the platform's buckets: the only S3 the VPC may reach
    extra_bucket_arns: list[str]  # e.g. the build account's artifact bucket, for promoted models
    boundary_arn: pulumi.Output[str]


class Network(pulumi.ComponentResource):
    def __init__(
        self, name: str, platform: Platform, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clinops:infra:Network", name, None, opts)
        child = platform.child(self)
        self._private_subnets(platform, child)
        self._security_groups(platform, child)
        self._s3_gateway_endpoint(platform, child, args)
        self._interface_endpoints(platform, child)
        self._flow_logs(platform, args)
        self.register_outputs(
            {"vpcId": self.vpc.id, "subnetIds": self.subnet_ids, "workloadSecurityGroupId": self.workload_sg.id}
        )

    def _private_subnets(self, platform: Platform, child: pulumi.ResourceOptions) -> None:
        """The VPC, its locked default security group, one private subnet per AZ and their route table (no route
        out)."""
        cfg = platform.config
        self.vpc = aws.ec2.Vpc(
            "vpc",
            cidr_block=cfg.vpc_cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=platform.tags(Name=f"{platform.prefix}-vpc"),
            opts=child,
        )
        # The default security group of a VPC allows all traffic between its members: take every rule away.
        aws.ec2.DefaultSecurityGroup(
            "default-security-group",
            vpc_id=self.vpc.id,
            ingress=[],
            egress=[],
            tags=platform.tags(Name=f"{platform.prefix}-default-deny"),
            opts=child,
        )
        zones = aws.get_availability_zones_output(state="available")
        cidrs = subnet_cidrs(cfg.vpc_cidr, cfg.availability_zones)
        self.route_table = aws.ec2.RouteTable(
            "private-routes",
            vpc_id=self.vpc.id,
            routes=[],
            tags=platform.tags(Name=f"{platform.prefix}-private"),
            opts=child,
        )
        self.subnets: list[aws.ec2.Subnet] = []
        for i, cidr in enumerate(cidrs):
            subnet = aws.ec2.Subnet(
                f"private-{i + 1}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zones.names[i],
                map_public_ip_on_launch=False,
                tags=platform.tags(Name=f"{platform.prefix}-private-{i + 1}", tier="private"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"private-{i + 1}-routes", subnet_id=subnet.id, route_table_id=self.route_table.id, opts=child
            )
            self.subnets.append(subnet)

    def _security_groups(self, platform: Platform, child: pulumi.ResourceOptions) -> None:
        """HTTPS to the endpoints from inside the VPC; the workload's egress as separate rules only."""
        cfg = platform.config
        self.endpoint_sg = aws.ec2.SecurityGroup(
            "endpoint-security-group",
            vpc_id=self.vpc.id,
            description="HTTPS to AWS APIs from inside the VPC only",
            ingress=[
                {
                    "description": "TLS from the VPC",
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": [cfg.vpc_cidr],
                }
            ],
            egress=[],
            tags=platform.tags(Name=f"{platform.prefix}-endpoints"),
            opts=child,
        )
        self.workload_sg = aws.ec2.SecurityGroup(
            "workload-security-group",
            vpc_id=self.vpc.id,
            description="SageMaker jobs, endpoints and Studio: talk to each other and to VPC endpoints only",
            ingress=[
                {
                    "description": "between workload members (distributed training, Studio EFS)",
                    "protocol": "-1",
                    "from_port": 0,
                    "to_port": 0,
                    "self": True,
                }
            ],
            # No inline egress: egress is all separate rule resources (below). Pulumi documents that inline rules
            # and SecurityGroupEgressRule on one group overwrite each other (a refresh then strips the S3 rule).
            # The provider removes AWS's default allow-all egress rule when it creates the group.
            tags=platform.tags(Name=f"{platform.prefix}-workloads"),
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            "workload-to-members",
            security_group_id=self.workload_sg.id,
            description="between workload members",
            ip_protocol="-1",
            referenced_security_group_id=self.workload_sg.id,
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            "workload-to-endpoints",
            security_group_id=self.workload_sg.id,
            description="TLS to AWS APIs inside the VPC",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4=cfg.vpc_cidr,
            opts=child,
        )

    def _s3_gateway_endpoint(self, platform: Platform, child: pulumi.ResourceOptions, args: NetworkArgs) -> None:
        """S3 through the route table, limited to the platform's buckets (and ECR's image layers)."""
        cfg = platform.config
        s3_resources = [
            *args.bucket_arns,
            *args.extra_bucket_arns,
            f"arn:aws:s3:::{ECR_LAYER_BUCKET.format(region=cfg.region)}",
        ]
        s3_objects = [pulumi.Output.from_input(a).apply(lambda x: f"{x}/*") for a in s3_resources]
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            "s3-gateway-endpoint",
            vpc_id=self.vpc.id,
            service_name=S3_ENDPOINT_SERVICE.format(region=cfg.region),
            vpc_endpoint_type="Gateway",
            route_table_ids=[self.route_table.id],
            policy=policy_document(
                {
                    "Sid": "PlatformBucketsOnly",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [*s3_resources, *s3_objects],
                }
            ),
            tags=platform.tags(Name=f"{platform.prefix}-s3"),
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            "workload-to-s3",
            security_group_id=self.workload_sg.id,
            description="TLS to S3 through the gateway endpoint",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            prefix_list_id=self.s3_endpoint.prefix_list_id,
            opts=child,
        )

    def _interface_endpoints(self, platform: Platform, child: pulumi.ResourceOptions) -> None:
        """One interface endpoint with private DNS per AWS API the platform calls (clinops.config's list)."""
        cfg = platform.config
        # Data perimeter: only principals of this account (and the registry account) may use the endpoints.
        perimeter = sorted({platform.account, cfg.registry_account})
        own_accounts_only = {
            "Sid": "OwnAccountsOnly",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": perimeter}},
        }
        endpoint_policy = policy_document(own_accounts_only)
        special_policies = {
            # MLflow: nothing but this stack's tracking server, and only for this account's principals (the
            # pipeline's TrackRun step as the execution role, Studio personas); another stack's or account's server
            # is refused.
            MLFLOW_ENDPOINT_SERVICE: policy_document(
                {
                    "Sid": "ThisStacksTrackingServerOnly",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "sagemaker-mlflow:*",
                    "Resource": tracking_server_arn(cfg.stack, cfg.region, platform.account),
                    "Condition": {"StringEquals": {"aws:PrincipalAccount": [platform.account]}},
                }
            ),
            # The EHR calls the private CDS Hooks API unsigned (CDS Hooks authenticates with its own JWT, checked
            # by the function), so no principal account is in the request: this endpoint also admits calls to this
            # account's APIs (Resource pins the account: the AWS-documented resource perimeter for bearer-token
            # private APIs), whose resource policy admits only calls through this endpoint.
            EXECUTE_API_ENDPOINT_SERVICE: policy_document(
                own_accounts_only,
                {
                    "Sid": "EhrCallsThisAccountsApis",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "execute-api:Invoke",
                    "Resource": f"arn:aws:execute-api:{cfg.region}:{platform.account}:*",
                    # The ARN pins the account; the IfExists condition repeats it for the perimeter rule
                    # (CLIN-NET-008) without denying the EHR should API Gateway leave aws:ResourceAccount out.
                    "Condition": {"StringEqualsIfExists": {"aws:ResourceAccount": [platform.account]}},
                },
            ),
        }
        self.interface_endpoints: dict[str, aws.ec2.VpcEndpoint] = {}
        for service in INTERFACE_ENDPOINT_SERVICES:
            service_name = service.format(region=cfg.region)
            short = (
                service_name.removeprefix(f"com.amazonaws.{cfg.region}.")
                .removeprefix("aws.")
                .replace(f".{cfg.region}", "")
                .replace(".", "-")
            )
            self.interface_endpoints[service] = aws.ec2.VpcEndpoint(
                f"endpoint-{short}",
                vpc_id=self.vpc.id,
                service_name=service_name,
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=self.subnet_ids,
                security_group_ids=[self.endpoint_sg.id],
                policy=special_policies.get(service, endpoint_policy),
                tags=platform.tags(Name=f"{platform.prefix}-{short}"),
                opts=child,
            )

    def _flow_logs(self, platform: Platform, args: NetworkArgs) -> None:
        """Every flow of the VPC to a KMS-encrypted log group, delivered by a role only flow logs may assume."""
        cfg, child = platform.config, platform.child(self)
        self.flow_log_group = encrypted_log_group(
            "flow-logs", platform, self, f"/clinops/{cfg.stack}/vpc-flow-logs", args.logs_key
        )
        flow_role = delivery_role(
            "flow-logs",
            platform,
            self,
            role_name=f"{platform.prefix}-flow-logs",
            service="vpc-flow-logs.amazonaws.com",
            source_arn=f"arn:aws:ec2:{cfg.region}:{platform.account}:vpc-flow-log/*",
            boundary_arn=args.boundary_arn,
            statement={
                "Sid": "DeliverFlowLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Resource": [self.flow_log_group.arn, self.flow_log_group.arn.apply(lambda a: f"{a}:*")],
            },
        )
        self.flow_log = aws.ec2.FlowLog(
            "vpc-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=flow_role.arn,
            max_aggregation_interval=60,
            tags=platform.tags(),
            opts=child,
        )

    @property
    def subnet_ids(self) -> list[pulumi.Output[str]]:
        return [s.id for s in self.subnets]


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """Equal private subnets, one per AZ, leaving room to add AZs later (4 slots)."""
    net = ipaddress.IPv4Network(vpc_cidr)
    return [str(s) for s in list(net.subnets(prefixlen_diff=2))[:count]]
