# Two buckets, as the service expects them:
#   input  (S3_IN_BUCKET):  {namespace}/jobs/{job_id}/input/...              the uploads
#   output (S3_OUT_BUCKET): {namespace}/jobs/{job_id}/output/...             the renamed files
#                           {namespace}/jobs/{job_id}/manifest.jsonl, job.json
# Names are deterministic and globally unique: prefix, role, account id, region.

locals {
  account_id = data.aws_caller_identity.current.account_id

  buckets = {
    input  = "${var.name_prefix}-input-${local.account_id}-${var.aws_region}"
    output = "${var.name_prefix}-output-${local.account_id}-${var.aws_region}"
  }
}

resource "aws_s3_bucket" "job" {
  #checkov:skip=CKV_AWS_18:Server access logs would need a third bucket with its own retention; the service logs every request and job itself, and CloudTrail data events can be enabled account-wide if an audit trail is required
  #checkov:skip=CKV_AWS_144:Cross-region replication is not wanted: the buckets hold transient job data that expires after job_data_retention_days and can be re-created by re-submitting the job
  #checkov:skip=CKV2_AWS_62:No consumer for S3 event notifications: jobs are announced through the SQS job queue by the API, not by object events
  #checkov:skip=CKV_AWS_21:Versioning is a choice (var.enable_versioning, default off): job objects are written once per job and expire after job_data_retention_days, so old versions would only add cost
  for_each = local.buckets

  bucket        = each.value
  force_destroy = var.force_destroy

  tags = {
    Name = each.value
    Role = each.key
  }
}

resource "aws_s3_bucket_public_access_block" "job" {
  for_each = local.buckets

  bucket                  = aws_s3_bucket.job[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "job" {
  for_each = local.buckets

  bucket = aws_s3_bucket.job[each.key].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "job" {
  for_each = local.buckets

  bucket = aws_s3_bucket.job[each.key].id

  rule {
    # SSE-KMS with the AWS-managed key aws/s3 (no kms_master_key_id): nothing to manage, key use is
    # logged in CloudTrail, and the bucket key keeps KMS request costs negligible. The key policy of
    # aws/s3 already lets principals of this account use it through S3, so the node role needs no
    # kms:* permission.
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "job" {
  for_each = local.buckets

  bucket = aws_s3_bucket.job[each.key].id

  versioning_configuration {
    status = var.enable_versioning ? "Enabled" : "Suspended"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "job" {
  for_each = local.buckets

  bucket = aws_s3_bucket.job[each.key].id

  rule {
    id     = "expire-job-data"
    status = "Enabled"

    filter {}

    expiration {
      days = var.job_data_retention_days
    }

    # Kept even while versioning is off: a bucket whose versioning was once enabled and is now
    # suspended still holds noncurrent versions, and the rule costs nothing otherwise.
    noncurrent_version_expiration {
      noncurrent_days = var.job_data_retention_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"

    filter {}

    expiration {
      expired_object_delete_marker = true
    }
  }

  # The lifecycle rules refer to versions, so apply them after the versioning setting.
  depends_on = [aws_s3_bucket_versioning.job]
}

data "aws_iam_policy_document" "bucket_tls_only" {
  for_each = local.buckets

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.job[each.key].arn,
      "${aws_s3_bucket.job[each.key].arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "job" {
  for_each = local.buckets

  bucket = aws_s3_bucket.job[each.key].id
  policy = data.aws_iam_policy_document.bucket_tls_only[each.key].json

  # S3 rejects a bucket policy while Block Public Access is being changed; order them.
  depends_on = [aws_s3_bucket_public_access_block.job]
}
