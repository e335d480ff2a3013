"""lambdakit: build, validate and deploy AWS Lambda layers with compiled dependencies."""

__version__ = "0.1.0"
