"""The service on one machine: the local stack (``renamer-ray up``) and the demo."""
