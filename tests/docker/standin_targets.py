"""Which stand-ins the tests here expect this machine kind to build, and from what."""

# (runtime, arch): the stand-ins an x86_64 machine of this kind builds from a Debian suite.
DEBIAN_STANDINS = [
    ("python3.9", "arm64"),
    ("python3.13", "arm64"),
    ("python3.14", "arm64"),
    ("python3.14", "x86_64"),
]
