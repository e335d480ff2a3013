"""The HTTP API: creates tasks, queues them, reports on them."""
