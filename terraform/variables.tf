variable "aws_region" {
  description = "AWS region for every resource. The service's AWS_REGION must be the same (see the aws_region output)."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "Prefix of every name (buckets, queues, role, security group). Also the Ray cluster name: the cluster config's cluster_name must equal it, because the node role may only start, stop and terminate instances tagged ray-cluster-name = name_prefix."
  type        = string
  default     = "renamer-ray"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 3 to 24 characters, lowercase letters, digits and hyphens, starting with a letter (it becomes part of S3 bucket names)."
  }
}

variable "tags" {
  description = "Extra tags added to every resource through the provider's default_tags."
  type        = map(string)
  default     = {}
}

variable "job_data_retention_days" {
  description = "Days after which uploads, renamed files, manifests and job records expire in both buckets (and, after the same delay, noncurrent object versions). Presigned download URLs stop working once the object is gone."
  type        = number
  default     = 30

  validation {
    condition     = var.job_data_retention_days >= 1 && floor(var.job_data_retention_days) == var.job_data_retention_days
    error_message = "job_data_retention_days must be a whole number of days, at least 1."
  }
}

variable "enable_versioning" {
  description = "Turn on S3 versioning for both buckets (\"Enabled\"); false leaves it \"Suspended\". Job data is transient and rewritten by the service, so versioning is off by default."
  type        = bool
  default     = false
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the buckets even when they still hold objects (all job data is lost). Leave false in production: destroy then fails on a non-empty bucket, which is the point."
  type        = bool
  default     = false
}

variable "max_receive_count" {
  description = "Receives before SQS moves a job message to the DLQ (the redrive policy's maxReceiveCount). Must equal the service's MAX_RECEIVES (default 3): the driver marks a job failed on its last receive."
  type        = number
  default     = 3

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number between 1 and 1000."
  }
}

variable "visibility_timeout_seconds" {
  description = "Job queue visibility timeout. Must equal the service's VISIBILITY_TIMEOUT (default 120): the driver extends a running job's visibility every HEARTBEAT_SECONDS (40), so 120 leaves three heartbeats of slack before another driver could receive the same job."
  type        = number
  default     = 120

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be between 0 and 43200 (12 hours), the SQS limits."
  }
}

variable "api_port" {
  description = "TCP port the Ray Serve HTTP API listens on (the service's API_PORT; `renamer-ray up` uses 8000)."
  type        = number
  default     = 8000

  validation {
    condition     = var.api_port >= 1 && var.api_port <= 65535
    error_message = "api_port must be a TCP port (1-65535)."
  }
}

variable "api_allowed_cidrs" {
  description = <<-EOT
    IPv4 CIDRs allowed to reach the API port on the Ray nodes. Default [] = nobody from outside the
    security group. WARNING: "0.0.0.0/0" exposes the API, plain HTTP without TLS, to the whole
    internet (with an empty API_KEYS it is also an open API that stores uploads and spends GPU time).
    Do not do that: put an HTTPS load balancer in front of the nodes and allow only its subnets or
    security group here (e.g. the VPC CIDR of an internal ALB).
  EOT
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.api_allowed_cidrs : can(cidrnetmask(cidr))])
    error_message = "api_allowed_cidrs must hold IPv4 CIDRs such as \"10.0.0.0/16\"."
  }
}

variable "admin_cidrs" {
  description = "IPv4 CIDRs of operators allowed to reach SSH (22) on the Ray nodes: `ray up`, and `ray dashboard` (which forwards the head's dashboard / job API, listening on 127.0.0.1 only, over SSH), need the operator's address here (e.g. [\"203.0.113.7/32\"]). Default [] = nobody. SSH to a node means running anything on the cluster, so only CIDRs of /16 or narrower are accepted."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.admin_cidrs : can(cidrnetmask(cidr)) && try(tonumber(split("/", cidr)[1]) >= 16, false)])
    error_message = "admin_cidrs must hold IPv4 CIDRs of /16 or narrower (SSH must never be open to the internet, not even as 0.0.0.0/1 + 128.0.0.0/1)."
  }
}

variable "worker_instance_types" {
  description = "EC2 instance types the head's autoscaler may launch (the cluster config's worker node types, e.g. g4dn.xlarge). The head's role can run no other type, so a stolen head credential cannot start a fleet of large instances. render.py refuses a cluster config whose workers are of another type."
  type        = list(string)
  default     = ["g4dn.xlarge"]

  validation {
    condition     = length(var.worker_instance_types) > 0 && alltrue([for t in var.worker_instance_types : can(regex("^[a-z0-9-]+\\.[a-z0-9]+$", t))])
    error_message = "worker_instance_types must list at least one exact EC2 instance type such as \"g4dn.xlarge\" (no wildcards)."
  }
}

variable "allow_http_egress" {
  description = "Also allow outbound TCP 80 from the Ray nodes (Ubuntu's apt mirrors on EC2 are plain HTTP; apt checks package signatures). Set false when the AMI needs no apt packages at boot; outbound 443 (S3, SQS, PyPI, the model hub) is always allowed."
  type        = bool
  default     = true
}

variable "vpc_id" {
  description = "VPC for the Ray nodes' security group. null = the region's default VPC."
  type        = string
  default     = null
}

variable "extra_read_bucket_arns" {
  description = "ARNs of other buckets (\"arn:aws:s3:::name\", no key) that bulk re-processing runs may list and read (their SRC). Default []: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.extra_read_bucket_arns : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", arn))])
    error_message = "extra_read_bucket_arns must hold bucket ARNs such as \"arn:aws:s3:::my-bucket\" (no key, no wildcard)."
  }
}

variable "extra_write_bucket_arns" {
  description = "ARNs of other buckets (\"arn:aws:s3:::name\", no key) that bulk re-processing runs may write to (their DST): list, read, put, and delete (a run deletes its own DST/_manifest/ parts and claims when it finishes). Default []: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.extra_write_bucket_arns : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", arn))])
    error_message = "extra_write_bucket_arns must hold bucket ARNs such as \"arn:aws:s3:::my-bucket\" (no key, no wildcard)."
  }
}
