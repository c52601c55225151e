# Two roles, each used through an instance profile:
# - worker (the GPU nodes, where images are decoded and the model runs): the job buckets and the job
#   queue, nothing else: a node that parses untrusted images can launch nothing and pass no role;
# - head (Serve proxy, API, driver, autoscaler; it runs no Ray task, see cluster/aws.yaml): the same,
#   plus what the autoscaler needs to launch, stop and terminate this cluster's workers (instances
#   tagged ray-cluster-name = var.name_prefix), passing them the worker role only.

locals {
  in_bucket_arn  = aws_s3_bucket.job["input"].arn
  out_bucket_arn = aws_s3_bucket.job["output"].arn

  # The service keeps everything of a job under {namespace}/jobs/{job_id}/ ("*" spans "/" in S3 ARNs).
  job_object_arns = [
    "${local.in_bucket_arn}/*/jobs/*",
    "${local.out_bucket_arn}/*/jobs/*",
  ]

  extra_read_object_arns  = [for arn in var.extra_read_bucket_arns : "${arn}/*"]
  extra_write_object_arns = [for arn in var.extra_write_bucket_arns : "${arn}/*"]

  ec2_arn_prefix = "arn:${data.aws_partition.current.partition}:ec2:${var.aws_region}:${local.account_id}"
  ray_cluster    = var.name_prefix
}

data "aws_iam_policy_document" "node_assume_role" {
  statement {
    sid     = "Ec2AssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

locals {
  node_roles = {
    head   = "Ray head of ${var.name_prefix}: job buckets, job queue, and launching this cluster's worker nodes"
    worker = "Ray GPU workers of ${var.name_prefix}: job buckets and job queue only"
  }
}

resource "aws_iam_role" "node" {
  for_each = local.node_roles

  name               = "${var.name_prefix}-${each.key}"
  description        = each.value
  assume_role_policy = data.aws_iam_policy_document.node_assume_role.json
}

resource "aws_iam_instance_profile" "node" {
  for_each = local.node_roles

  name = "${var.name_prefix}-${each.key}"
  role = aws_iam_role.node[each.key].name
}

# --- S3 ----------------------------------------------------------------------------------------

data "aws_iam_policy_document" "node_s3" {
  statement {
    sid     = "ListBuckets"
    effect  = "Allow"
    actions = ["s3:ListBucket"]
    resources = distinct(concat(
      [local.in_bucket_arn, local.out_bucket_arn],
      var.extra_read_bucket_arns,
      var.extra_write_bucket_arns,
    ))
  }

  # Inputs, outputs, manifests and job records of the service; SRC objects of bulk runs; and the
  # DST objects of bulk runs, which are read back on a resumed run (claims, manifest parts, HEAD
  # before a conditional copy).
  statement {
    sid     = "ReadObjects"
    effect  = "Allow"
    actions = ["s3:GetObject"]
    resources = distinct(concat(
      local.job_object_arns,
      local.extra_read_object_arns,
      local.extra_write_object_arns,
    ))
  }

  # Uploads (input), renamed files, manifests, job records and claims (output), and bulk runs' DST.
  statement {
    sid     = "WriteObjects"
    effect  = "Allow"
    actions = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = distinct(concat(
      local.job_object_arns,
      local.extra_write_object_arns,
    ))
  }

  # A run deletes only its own work folder DST/_manifest/ (claims and sorted manifest parts) once
  # it has finished, and a finished job its empty in-flight marker (MAX_JOBS_IN_FLIGHT counts them).
  # Nothing else is ever deleted by the service: expiry is the lifecycle rule's job.
  statement {
    sid     = "DeleteOwnManifestFolders"
    effect  = "Allow"
    actions = ["s3:DeleteObject"]
    resources = distinct(concat(
      ["${local.out_bucket_arn}/*/jobs/*/output/_manifest/*", "${local.out_bucket_arn}/*/jobs/_in_flight/*"],
      [for arn in var.extra_write_bucket_arns : "${arn}/*_manifest/*"],
    ))
  }
}

resource "aws_iam_role_policy" "node_s3" {
  for_each = local.node_roles

  name   = "s3-job-data"
  role   = aws_iam_role.node[each.key].id
  policy = data.aws_iam_policy_document.node_s3.json
}

# --- SQS ---------------------------------------------------------------------------------------

data "aws_iam_policy_document" "node_sqs" {
  statement {
    sid    = "JobQueue"
    effect = "Allow"
    actions = [
      "sqs:SendMessage",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
    ]
    resources = [aws_sqs_queue.jobs.arn]
  }

  # Read-only, for queue-depth metrics; nothing on the node reads or redrives the DLQ.
  statement {
    sid       = "DeadLetterQueueAttributes"
    effect    = "Allow"
    actions   = ["sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.jobs_dlq.arn]
  }
}

resource "aws_iam_role_policy" "node_sqs" {
  for_each = local.node_roles

  name   = "sqs-job-queue"
  role   = aws_iam_role.node[each.key].id
  policy = data.aws_iam_policy_document.node_sqs.json
}

# --- Ray autoscaler (head node launches worker nodes) ------------------------------------------

data "aws_iam_policy_document" "node_ray_autoscaler" {
  # Resource "*" is unavoidable here: EC2 Describe* actions support no resource-level permissions.
  # They are read-only. checkov accepts this statement as is (CKV_AWS_356 only flags "*" for
  # actions that can be scoped), so it needs no skip; every mutating action below is scoped.
  statement {
    sid    = "RayDescribe"
    effect = "Allow"
    actions = [
      "ec2:DescribeInstances",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeImages",
      "ec2:DescribeSubnets",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeKeyPairs",
    ]
    resources = ["*"]
  }

  # A new instance must carry ray-cluster-name = this cluster (Ray's node provider tags every
  # node it launches with it in the RunInstances call).
  statement {
    sid       = "RunTaggedInstances"
    effect    = "Allow"
    actions   = ["ec2:RunInstances"]
    resources = ["${local.ec2_arn_prefix}:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/ray-cluster-name"
      values   = [local.ray_cluster]
    }

    # ... of the worker types only (a stolen head credential cannot start other instances).
    condition {
      test     = "StringEquals"
      variable = "ec2:InstanceType"
      values   = var.worker_instance_types
    }
  }

  # ... in a subnet of this VPC ...
  statement {
    sid    = "RunInstancesInThisVpc"
    effect = "Allow"
    actions = [
      "ec2:RunInstances",
    ]
    resources = [
      "${local.ec2_arn_prefix}:subnet/*",
      "${local.ec2_arn_prefix}:network-interface/*",
    ]

    condition {
      test     = "ArnEquals"
      variable = "ec2:Vpc"
      values   = [data.aws_vpc.selected.arn]
    }
  }

  # ... with the Ray nodes' security group only, and whatever image, key pair, volumes and spot
  # request the cluster config names.
  statement {
    sid     = "RunInstancesSupportingResources"
    effect  = "Allow"
    actions = ["ec2:RunInstances"]
    resources = [
      aws_security_group.ray_nodes.arn,
      "${local.ec2_arn_prefix}:volume/*",
      "${local.ec2_arn_prefix}:key-pair/*",
      "${local.ec2_arn_prefix}:spot-instances-request/*",
      "arn:${data.aws_partition.current.partition}:ec2:${var.aws_region}::image/*",
    ]
  }

  # Tags set by RunInstances itself (TagSpecifications).
  statement {
    sid       = "TagOnLaunch"
    effect    = "Allow"
    actions   = ["ec2:CreateTags"]
    resources = ["${local.ec2_arn_prefix}:*/*"]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
  }

  # Ray updates its status tags on running nodes, and stops (cache_stopped_nodes), restarts and
  # terminates them: only nodes of this cluster.
  statement {
    sid    = "ManageClusterInstances"
    effect = "Allow"
    actions = [
      "ec2:CreateTags",
      "ec2:StartInstances",
      "ec2:StopInstances",
      "ec2:TerminateInstances",
    ]
    resources = ["${local.ec2_arn_prefix}:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/ray-cluster-name"
      values   = [local.ray_cluster]
    }
  }

  # Launching a worker with its instance profile passes the worker role, and only that role, to EC2.
  statement {
    sid       = "PassWorkerRoleToEc2"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.node["worker"].arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "head_ray_autoscaler" {
  name   = "ray-autoscaler"
  role   = aws_iam_role.node["head"].id
  policy = data.aws_iam_policy_document.node_ray_autoscaler.json
}
