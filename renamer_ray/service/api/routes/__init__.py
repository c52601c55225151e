"""One router per concern: jobs, events + archive, ops, page."""
