# The VPC (default VPC unless var.vpc_id is set), its subnets, and one security group shared by
# every Ray node. Rules:
#   ingress  api_port    from api_allowed_cidrs   the Serve HTTP API (none by default)
#   ingress  22          from admin_cidrs         `ray up` (SSH); the dashboard / job API (8265)
#                                                 listens on the head's 127.0.0.1 only and is
#                                                 reached through `ray dashboard` (an SSH forward)
#   ingress  all         from the group itself    Ray's own ports (GCS 6379, raylets, object
#                                                 managers, workers, Serve proxies), head->worker SSH
#   egress   all         to the group itself      the same traffic, outbound side
#   egress   443         to 0.0.0.0/0             S3, SQS, EC2/IAM APIs, PyPI, the model hub
#   egress   80          to 0.0.0.0/0             apt mirrors (only with allow_http_egress)
# DNS (the VPC resolver) and NTP (169.254.169.123) are link-local/VPC services that security groups
# do not filter, so they need no rule.

data "aws_vpc" "selected" {
  id      = var.vpc_id
  default = var.vpc_id == null ? true : null
}

data "aws_subnets" "selected" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.selected.id]
  }
}

resource "aws_security_group" "ray_nodes" {
  #checkov:skip=CKV2_AWS_5:The group is attached by the Ray cluster launcher (SecurityGroupIds in the cluster config, from the security_group_id output), not by a Terraform-managed instance
  name        = "${var.name_prefix}-ray-nodes"
  description = "Ray nodes of ${var.name_prefix} (head and GPU workers)"
  vpc_id      = data.aws_vpc.selected.id

  tags = {
    Name = "${var.name_prefix}-ray-nodes"
  }
}

resource "aws_vpc_security_group_ingress_rule" "api" {
  for_each = toset(var.api_allowed_cidrs)

  security_group_id = aws_security_group.ray_nodes.id
  description       = "Ray Serve HTTP API from an allowed network"
  ip_protocol       = "tcp"
  from_port         = var.api_port
  to_port           = var.api_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.admin_cidrs)

  security_group_id = aws_security_group.ray_nodes.id
  description       = "SSH from operators (ray up, ray attach)"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "cluster_internal" {
  security_group_id            = aws_security_group.ray_nodes.id
  description                  = "All traffic between Ray nodes of this cluster (GCS, raylets, object transfer, SSH from the head)"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.ray_nodes.id
}

resource "aws_vpc_security_group_egress_rule" "cluster_internal" {
  security_group_id            = aws_security_group.ray_nodes.id
  description                  = "All traffic to other Ray nodes of this cluster"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.ray_nodes.id
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.ray_nodes.id
  description       = "HTTPS to AWS APIs (S3, SQS, EC2, IAM), PyPI and the model hub"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "http" {
  count = var.allow_http_egress ? 1 : 0

  security_group_id = aws_security_group.ray_nodes.id
  description       = "HTTP to OS package mirrors (apt); packages are signature-checked"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}
