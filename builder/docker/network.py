"""How a container reaches a service on this host: the host's address on Docker's default bridge."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass

import docker
import docker.errors

from builder.errors import EnvironmentProblem


@dataclass(frozen=True, kw_only=True)
class Bridge:
    """Docker's default bridge network, where `sam local invoke` and LocalStack put Lambda containers."""

    address: str  # this host's IPv4 address on it: how a container reaches a service on the host
    subnet: str  # the containers' addresses (for pg_hba.conf, firewalls)
    interface: str
    source: str  # where the address was read: the network's IPAM gateway, or the interface itself


# ioctl(2) requests for an interface's IPv4 address and netmask (linux/sockios.h).
_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B


def interface_ipv4(name: str) -> ipaddress.IPv4Interface | None:
    """The IPv4 address and network of one of this host's interfaces, None when it has none."""
    request = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            address = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)[20:24]
            netmask = fcntl.ioctl(sock.fileno(), _SIOCGIFNETMASK, request)[20:24]
        except OSError:
            return None
    return ipaddress.IPv4Interface(f"{socket.inet_ntoa(address)}/{socket.inet_ntoa(netmask)}")


def default_bridge(client: docker.DockerClient) -> Bridge:
    """The host's address on the default bridge.

    Docker records it as the network's IPAM gateway; Debian's Docker 20.10 leaves
    that key out and only the bridge interface (docker0) carries the address.
    """
    try:
        network = client.networks.get("bridge")
    except docker.errors.NotFound as err:
        raise EnvironmentProblem(
            "the Docker engine has no default `bridge` network",
            hint="restart dockerd without --bridge=none (scripts/ensure-docker.sh does)",
        ) from err
    interface = (network.attrs.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    ipam = network.attrs.get("IPAM", {}).get("Config") or []
    configs = [c for c in ipam if ":" not in c.get("Subnet", ":")]  # IPv4 only
    subnet = configs[0]["Subnet"] if configs else ""
    if configs and configs[0].get("Gateway"):
        return Bridge(address=configs[0]["Gateway"], subnet=subnet, interface=interface, source="gateway")
    found = interface_ipv4(interface)
    if found is None:
        raise EnvironmentProblem(
            f"the default bridge records no gateway and this host has no IPv4 address on {interface}",
            hint="the Docker engine must run on this machine (not through a remote DOCKER_HOST); "
            "restart it: scripts/ensure-docker.sh",
        )
    return Bridge(
        address=str(found.ip), subnet=subnet or str(found.network), interface=interface, source="interface"
    )
