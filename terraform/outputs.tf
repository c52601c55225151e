# What the service (environment variables) and the Ray cluster config need.

output "s3_in_bucket" {
  description = "Input bucket (uploads). Service env var S3_IN_BUCKET."
  value       = aws_s3_bucket.job["input"].id
}

output "s3_out_bucket" {
  description = "Output bucket (renamed files, manifests, job records). Service env var S3_OUT_BUCKET."
  value       = aws_s3_bucket.job["output"].id
}

output "sqs_queue_url" {
  description = "Job queue URL. Service env var SQS_QUEUE_URL."
  value       = aws_sqs_queue.jobs.id
}

output "sqs_dlq_url" {
  description = "Dead-letter queue URL (jobs received max_receive_count times): for operators and alarms."
  value       = aws_sqs_queue.jobs_dlq.id
}

output "aws_region" {
  description = "Region of every resource. Service env var AWS_REGION; cluster config provider.region."
  value       = var.aws_region
}

output "head_instance_profile_arn" {
  description = "Instance profile of the Ray head (autoscaler permissions). Cluster config: node_config.IamInstanceProfile.Arn of the head node type."
  value       = aws_iam_instance_profile.node["head"].arn
}

output "worker_instance_profile_arn" {
  description = "Instance profile of the GPU workers (job data only). Cluster config: node_config.IamInstanceProfile.Arn of every worker node type."
  value       = aws_iam_instance_profile.node["worker"].arn
}

output "node_role_arns" {
  description = "IAM roles behind the instance profiles, by node kind (for audits and extra policies)."
  value       = { for kind, role in aws_iam_role.node : kind => role.arn }
}

output "security_group_id" {
  description = "Security group of the Ray nodes. Cluster config: node_config.SecurityGroupIds of every node type."
  value       = aws_security_group.ray_nodes.id
}

output "vpc_id" {
  description = "VPC the security group belongs to; Ray nodes must be launched into its subnets."
  value       = data.aws_vpc.selected.id
}

output "subnet_ids" {
  description = "Subnets of that VPC. Cluster config: node_config.SubnetIds (pick those in AZs that offer g4dn)."
  value       = data.aws_subnets.selected.ids
}

output "ray_cluster_name" {
  description = "cluster_name the Ray cluster config must use: the node role only manages instances tagged ray-cluster-name with this value."
  value       = var.name_prefix
}

output "worker_instance_types" {
  description = "Instance types the head may launch. render.py checks the cluster config's worker types against it."
  value       = var.worker_instance_types
}
