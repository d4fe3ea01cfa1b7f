"""Network isolation: PHI workloads live in private subnets with no path to or from the internet."""

from __future__ import annotations

import re

from policies.controls import ACCESS_CONTROL, ACTIVITY_REVIEW, AUDIT, TRANSMISSION
from policies.rules.base import UNKNOWN, Findings, StackView, as_list, is_cidr_everywhere, rule

VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
EGRESS_GATEWAYS = (
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
    "aws:ec2/natGateway:NatGateway",
)
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLES = ("aws:ec2/routeTable:RouteTable", "aws:ec2/defaultRouteTable:DefaultRouteTable")
SECURITY_GROUPS = ("aws:ec2/securityGroup:SecurityGroup", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
DOMAIN = "aws:sagemaker/domain:Domain"
GATEWAY_CAPABLE = (".s3", ".dynamodb")  # the only services AWS offers as gateway endpoints


@rule(
    id="CLIN-NET-001",
    title="No internet or NAT gateway",
    severity="critical",
    controls=(ACCESS_CONTROL, TRANSMISSION),
    types=EGRESS_GATEWAYS,
    fix="Remove the gateway and reach AWS services through VPC endpoints instead.",
)
def no_internet_gateways(stack: StackView, findings: Findings) -> None:
    for gateway in stack.of_type(*EGRESS_GATEWAYS):
        kind = gateway.resource_type.split(":")[-1]
        findings.fail(gateway, f"{kind} '{gateway.name}' gives the VPC a path to the internet")


@rule(
    id="CLIN-NET-002",
    title="No default route to the internet",
    severity="critical",
    controls=(ACCESS_CONTROL, TRANSMISSION),
    types=(ROUTE, *ROUTE_TABLES),
    fix="Delete routes to 0.0.0.0/0 and ::/0; route only private prefixes and VPC endpoints.",
)
def no_default_routes(stack: StackView, findings: Findings) -> None:
    for route in stack.of_type(ROUTE):
        props = stack.props(route)
        for key in ("destinationCidrBlock", "destinationIpv6CidrBlock"):
            if is_cidr_everywhere(props.get(key)):
                findings.fail(route, f"route '{route.name}' sends {props[key]} out of the VPC")
    for table in stack.of_type(*ROUTE_TABLES):
        for entry in as_list(stack.props(table).get("routes")):
            for key in ("cidrBlock", "ipv6CidrBlock"):
                if isinstance(entry, dict) and is_cidr_everywhere(entry.get(key)):
                    findings.fail(table, f"route table '{table.name}' has a route for {entry[key]}")


@rule(
    id="CLIN-NET-003",
    title="No security group ingress from anywhere",
    severity="critical",
    controls=(ACCESS_CONTROL,),
    types=(*SECURITY_GROUPS, INGRESS_RULE, LEGACY_RULE),
    fix="Allow ingress only from the VPC CIDR, a prefix list or another security group.",
)
def no_open_ingress(stack: StackView, findings: Findings) -> None:
    for group in stack.of_type(*SECURITY_GROUPS):
        for entry in as_list(stack.props(group).get("ingress")):
            if not isinstance(entry, dict):
                continue
            for cidr in [*as_list(entry.get("cidrBlocks")), *as_list(entry.get("ipv6CidrBlocks"))]:
                if is_cidr_everywhere(cidr):
                    findings.fail(group, f"security group '{group.name}' admits {cidr}")
    for ingress in stack.of_type(INGRESS_RULE):
        props = stack.props(ingress)
        for cidr in (props.get("cidrIpv4"), props.get("cidrIpv6")):
            if is_cidr_everywhere(cidr):
                findings.fail(ingress, f"ingress rule '{ingress.name}' admits {cidr}")
    for legacy in stack.of_type(LEGACY_RULE):
        props = stack.props(legacy)
        if props.get("type") != "ingress":
            continue
        for cidr in [*as_list(props.get("cidrBlocks")), *as_list(props.get("ipv6CidrBlocks"))]:
            if is_cidr_everywhere(cidr):
                findings.fail(legacy, f"ingress rule '{legacy.name}' admits {cidr}")


@rule(
    id="CLIN-NET-004",
    title="Flow logs capture all traffic of every VPC",
    severity="high",
    controls=(AUDIT, ACTIVITY_REVIEW),
    reads=(FLOW_LOG,),
    types=(VPC,),
    fix="Add an aws.ec2.FlowLog with vpc_id=<the VPC>.id and traffic_type='ALL'.",
)
def vpc_flow_logs(stack: StackView, findings: Findings) -> None:
    for vpc in stack.of_type(VPC):
        logs = stack.referencing(vpc, "vpcId", FLOW_LOG)
        kinds = sorted(str(stack.props(log).get("trafficType")) for log in logs)
        if not logs:
            findings.fail(vpc, f"VPC '{vpc.name}' has no flow log (none references it through vpcId)")
        elif "ALL" not in kinds:
            findings.fail(vpc, f"VPC '{vpc.name}' flow logs capture only {', '.join(kinds)} traffic, not ALL")


@rule(
    id="CLIN-NET-005",
    title="SageMaker Studio domains are VPC-only",
    severity="high",
    controls=(ACCESS_CONTROL, TRANSMISSION),
    types=(DOMAIN,),
    fix="Set app_network_access_type='VpcOnly' on the SageMaker domain (AWS defaults to PublicInternetOnly).",
)
def studio_vpc_only(stack: StackView, findings: Findings) -> None:
    for domain in stack.of_type(DOMAIN):
        mode = stack.props(domain).get("appNetworkAccessType")
        if mode is UNKNOWN:
            findings.unknown(domain, "appNetworkAccessType")
        elif mode != "VpcOnly":
            findings.fail(domain, f"domain '{domain.name}' network access is {mode or 'PublicInternetOnly (default)'}")


@rule(
    id="CLIN-NET-006",
    title="Required VPC endpoints present with private DNS",
    severity="high",
    controls=(TRANSMISSION,),
    types=(VPC, VPC_ENDPOINT),
    config=("region", "requiredEndpointServices"),
    fix="Add an Interface VPC endpoint with private_dns_enabled=True for each missing service (S3: Gateway).",
)
def required_endpoints(stack: StackView, findings: Findings) -> None:
    region = re.escape(stack.config["region"]) if stack.config["region"] else "[a-z0-9-]+"
    required = {
        svc: re.compile(re.escape(svc).replace(re.escape("{region}"), region) + "$")
        for svc in stack.config["requiredEndpointServices"]
    }
    for endpoint in stack.of_type(VPC_ENDPOINT):
        props = stack.props(endpoint)
        service, kind = str(props.get("serviceName")), props.get("vpcEndpointType") or "Gateway"
        if kind == "Interface" and props.get("privateDnsEnabled") is UNKNOWN:
            findings.unknown(endpoint, "privateDnsEnabled")
        elif kind == "Interface" and props.get("privateDnsEnabled") is not True:
            findings.fail(
                endpoint,
                f"interface endpoint for {service} has private DNS off, so SDK calls resolve to the public endpoint",
            )
        if kind == "Gateway" and not service.endswith(GATEWAY_CAPABLE):
            findings.fail(endpoint, f"{service} is not offered as a Gateway endpoint; use an Interface endpoint")
    for vpc in stack.of_type(VPC):
        services = [str(stack.props(e).get("serviceName")) for e in stack.referencing(vpc, "vpcId", VPC_ENDPOINT)]
        missing = [
            svc.format(region=stack.config["region"] or "<region>")
            for svc, pattern in required.items()
            if not any(pattern.match(s) for s in services)
        ]
        if missing:
            findings.fail(vpc, f"VPC '{vpc.name}' lacks endpoints for: {', '.join(missing)}")


RULES = (no_internet_gateways, no_default_routes, no_open_ingress, vpc_flow_logs, studio_vpc_only, required_endpoints)
