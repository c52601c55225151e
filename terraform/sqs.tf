# The job queue (SQS_QUEUE_URL) and its dead-letter queue. The API sends one message per job; the
# driver long-polls, extends visibility every HEARTBEAT_SECONDS while a job runs, deletes the
# message once outputs, manifest and status are written, and lets SQS move a job that failed
# max_receive_count times to the DLQ.

resource "aws_sqs_queue" "jobs_dlq" {
  name = "${var.name_prefix}-jobs-dlq"
  # 14 days, the SQS maximum: longer than the job queue's retention, because a message keeps its
  # original enqueue time when it moves to the DLQ.
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true

  tags = {
    Name = "${var.name_prefix}-jobs-dlq"
  }
}

resource "aws_sqs_queue" "jobs" {
  name                       = "${var.name_prefix}-jobs"
  visibility_timeout_seconds = var.visibility_timeout_seconds
  receive_wait_time_seconds  = 20     # long polling by default (the driver also asks for SQS_WAIT_SECONDS)
  message_retention_seconds  = 345600 # 4 days (the SQS default), well under the DLQ's 14 days
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.jobs_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = {
    Name = "${var.name_prefix}-jobs"
  }
}

resource "aws_sqs_queue_redrive_allow_policy" "jobs_dlq" {
  queue_url = aws_sqs_queue.jobs_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.jobs.arn]
  })
}

data "aws_iam_policy_document" "queue_tls_only" {
  for_each = {
    jobs     = aws_sqs_queue.jobs.arn
    jobs_dlq = aws_sqs_queue.jobs_dlq.arn
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [each.value]

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

resource "aws_sqs_queue_policy" "jobs" {
  queue_url = aws_sqs_queue.jobs.id
  policy    = data.aws_iam_policy_document.queue_tls_only["jobs"].json
}

resource "aws_sqs_queue_policy" "jobs_dlq" {
  queue_url = aws_sqs_queue.jobs_dlq.id
  policy    = data.aws_iam_policy_document.queue_tls_only["jobs_dlq"].json
}
