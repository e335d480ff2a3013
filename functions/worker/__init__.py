"""The SQS worker: claims queued tasks, processes them, records the results."""
