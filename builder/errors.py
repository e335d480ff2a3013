"""User-facing failures. Each carries its exit code and a hint; only builder/cli/render.py renders them."""

from __future__ import annotations

from builder.problems import Problem

# Exit codes, the same for every command (documented in the README).
EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_NOT_VERIFIED = 3


class LambdakitError(Exception):
    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str = "", step: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.step = step

    def to_dict(self) -> dict[str, object]:
        return {"error": type(self).__name__, "step": self.step, "message": self.message, "hint": self.hint}


class UsageError(LambdakitError):
    """Bad input from the user: a requirement, a path, an option."""


class EnvironmentProblem(LambdakitError):
    """Something the machine lacks: Docker, an image, network access to the index."""


class ResolveError(LambdakitError):
    """The requirements cannot be satisfied for the target runtime."""

    exit_code = EXIT_INVALID


class UnpackableLayer(LambdakitError):
    """The resolved packages hold what a layer zip cannot carry (a symbolic link)."""

    exit_code = EXIT_INVALID


class DeployFailed(LambdakitError):
    """A SAM command failed; its output says why."""

    exit_code = EXIT_INVALID


class InvalidLayer(LambdakitError):
    """The built layer failed validation and was not published."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, *, hint: str = "", step: str = "", report: dict[str, object]) -> None:
        super().__init__(message, hint=hint, step=step)
        self.report = report

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "validation": self.report}

    def problems(self) -> list[Problem]:
        """The report's problems, for rendering as text."""
        listed = self.report.get("problems")
        return [Problem.from_dict(p) for p in listed] if isinstance(listed, list) else []
