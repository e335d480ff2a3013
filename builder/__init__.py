"""lambdakit: build, validate and deploy AWS Lambda layers with compiled dependencies."""

from pathlib import Path

__version__ = "0.1.0"

# The data files the rules and the catalogue read (shipped in the wheel).
DATA_DIR = Path(__file__).parent / "data"
