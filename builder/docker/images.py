"""Lambda's images on this engine: present or not, official or stand-in, and how to get one.

builder.docker.container wraps the Docker SDK (it reads a stand-in's labels, but decides
nothing about Lambda's images); this is where an image name is read as a runtime or
build image, and a missing one gets the command that builds its offline stand-in
when this machine can.
"""

from __future__ import annotations

import docker

from builder.availability import Availability
from builder.docker import container
from builder.docker.standin import standin_command
from builder.errors import EnvironmentProblem


def image_availability(name: str, docker_platform: str) -> Availability:
    """Engine up, image present for the platform, platform runnable: with the first reason it is not."""
    try:
        client = container.connect()
    except EnvironmentProblem as err:
        return Availability(ok=False, reason=f"{err.message}; {err.hint}")
    facts = container.image_facts(client, name)
    if facts is None:
        hint = missing_image_hint(name)
        return Availability(ok=False, reason=f"image {name} is not present ({hint})")
    wanted = docker_platform.split("/")[1]
    if facts.architecture and facts.architecture != wanted:
        reason = f"image {name} is for {facts.architecture}, not {wanted}"
        return Availability(ok=False, reason=f"{reason} ({missing_image_hint(name)})")
    emulation = container.emulation_availability(client, docker_platform)
    if not emulation.ok:
        return emulation
    return Availability(ok=True, reason=facts.describe(), standin=facts.standin)


def require_image(client: docker.DockerClient, name: str) -> container.ImageFacts:
    facts = container.image_facts(client, name)
    if facts is None:
        raise EnvironmentProblem(f"image {name} is not present", hint=missing_image_hint(name))
    return facts


def missing_image_hint(name: str) -> str:
    command = standin_command(name)
    if command is None:
        return f"docker pull {name}; no offline stand-in of it can be built here"
    return f"docker pull {name}, or build the offline stand-in with `{command}`"
