"""The image, built from the Dockerfile with podman and run as it ships (SPEC section 12).

The build goes through `make image` with this machine's pip settings mounted in
(dev/build-mounts.py), on the base named by DNS_SIDECAR_IMAGE_BASE, else on a stand-in made
with debootstrap (dev/stand-in-base.sh, cached), since no registry may be reachable. The
container then runs as the manifests run it: its own user, a read-only root filesystem with a
tmpfs on /tmp. Skipped, saying why, without root, podman or debootstrap (`.ci/run` installs them).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.service import REPO, command, free_port, wait_for

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
TAG = f"localhost/dns-sidecar-image-test:{PROJECT['version']}"
STAND_IN = "localhost/dns-sidecar-stand-in-base:bookworm"
SECRET = "image-test-secret"
SHUTDOWN_TIMEOUT = 10  # DNS_SIDECAR_SHUTDOWN_TIMEOUT given to the container
# This sandbox: crun refuses its hybrid cgroup layout (runc works), and higher limits than
# these are refused. Harmless elsewhere; PODMAN_RUN_FLAGS replaces them.
ENGINE_FLAGS = shlex.split(
    os.environ.get(
        "PODMAN_RUN_FLAGS",
        "--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024",
    )
)


def exe(name: str) -> str:
    """The full path of a program on PATH (the name itself when absent: the skip says why)."""
    return shutil.which(name) or name


def _missing() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (.ci/run installs podman, runc and debootstrap)"
    if not os.environ.get("DNS_SIDECAR_IMAGE_BASE"):
        if os.geteuid() != 0:
            return "the stand-in base needs root for debootstrap (or set DNS_SIDECAR_IMAGE_BASE)"
        if shutil.which("debootstrap") is None and not _has_image(STAND_IN):
            return "debootstrap is not installed (.ci/run installs it)"
    return None


def _has_image(name: str) -> bool:
    exists = subprocess.run([exe("podman"), "image", "exists", name], check=False, timeout=60)
    return exists.returncode == 0


_SKIP = _missing()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [exe("podman"), *args], capture_output=True, text=True, timeout=timeout, check=check
    )


@pytest.fixture(scope="module")
def image() -> str:
    """Build the Dockerfile through `make image` with podman; the tag this module runs."""
    base = os.environ.get("DNS_SIDECAR_IMAGE_BASE")
    if not base:
        made = subprocess.run(
            [str(REPO / "dev" / "stand-in-base.sh"), STAND_IN],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        base = STAND_IN
    mounts = subprocess.run(
        [sys.executable, str(REPO / "dev" / "build-mounts.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    flags = " ".join([*ENGINE_FLAGS, "--network", "host", f"--build-arg PYTHON_IMAGE={base}"])
    built = subprocess.run(
        [
            exe("make"),
            "--no-print-directory",
            "image",
            f"PYTHON={sys.executable}",
            "CONTAINER_ENGINE=podman",
            f"IMAGE={TAG}",
            f"IMAGE_BUILD_FLAGS={flags} {mounts}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    return TAG


def inspect(image: str) -> dict[str, Any]:
    (found,) = json.loads(podman("image", "inspect", image).stdout)
    return dict(found)


@dataclass
class Container:
    name: str
    port: int
    management_port: int

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr


def run_flags() -> list[str]:
    """As the manifests run it: read-only root, only /tmp writable, no extra privileges."""
    return [
        *ENGINE_FLAGS,
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs",
        "/tmp:rw,size=16m",  # noqa: S108 - the emptyDir the manifests mount
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ]


def ready(container: Container) -> bool:
    url = f"http://127.0.0.1:{container.management_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture
def serving(image: str) -> Iterator[Container]:
    """The image's entrypoint (`dns-sidecar serve`) on host-network loopback ports."""
    container = Container(f"dns-sidecar-test-{uuid.uuid4().hex[:8]}", free_port(), free_port())
    podman(
        "run",
        "--detach",
        "--name",
        container.name,
        "--network",
        "host",
        *run_flags(),
        "--env",
        f"DNS_SIDECAR_HMAC_SECRET={SECRET}",
        "--env",
        f"DNS_SIDECAR_SHUTDOWN_TIMEOUT={SHUTDOWN_TIMEOUT}",
        image,
        "--port",
        str(container.port),
        "--management-port",
        str(container.management_port),
    )
    try:
        wait_for(lambda: ready(container) or not _running(container.name), deadline=60)
        assert ready(container), container.logs()
        yield container
    finally:
        podman("rm", "--force", "--time", "0", container.name, check=False)


def _running(name: str) -> bool:
    state = podman("inspect", "--format", "{{.State.Running}}", name, check=False)
    return state.stdout.strip() == "true"


def test_image_runs_as_a_numeric_non_root_user(image: str, serving: Container) -> None:
    """The image's user is 65532:65532, and the serving process has that uid and gid."""
    assert inspect(image)["Config"]["User"] == "65532:65532"
    ids = podman("exec", serving.name, "python", "-c", "import os; print(os.getuid(), os.getgid())")
    assert ids.stdout.split() == ["65532", "65532"]


def test_image_serves_a_signed_upsert_on_a_read_only_root(serving: Container) -> None:
    """On a read-only root, the container answers a signed upsert and reads the record back."""
    url = f"http://127.0.0.1:{serving.port}"
    record = {"type": "A", "domain": "example.com", "subdomain": "www", "values": ["192.0.2.7"]}
    data = json.dumps({"record": record, "operation": "upsert"})
    replies = [
        subprocess.run(
            command("request", *call, "--url", url, "--secret", SECRET),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for call in (("POST", "/records", "--data", data), ("GET", "/records/A/example.com/www"))
    ]
    assert [r.stdout.splitlines()[0] for r in replies] == ["HTTP 200", "HTTP 200"], serving.logs()
    assert json.loads(replies[1].stdout.split("\n", 1)[1])["record"]["values"] == ["192.0.2.7"]
    unsigned = subprocess.run(
        command("request", "GET", "/health", "--url", url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unsigned.stdout.splitlines()[0] == "HTTP 401"
    writable = podman("exec", serving.name, "touch", "/opt/dns-sidecar/x", check=False)
    assert "Read-only file system" in writable.stderr


def test_image_checks_the_example_table(image: str) -> None:
    """`dns-sidecar check` in the image accepts the shipped example routing table."""
    table = REPO / "config" / "routing.example.yaml"
    result = podman(
        "run",
        "--rm",
        *run_flags(),
        "--volume",
        f"{table}:/etc/dns-sidecar/routing.yaml:ro",
        "--entrypoint",
        "dns-sidecar",
        image,
        "check",
        "/etc/dns-sidecar/routing.yaml",
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("/etc/dns-sidecar/routing.yaml: OK (4 zone(s)")


def test_image_labels_match_pyproject(image: str) -> None:
    """The OCI labels carry pyproject's version and licence, and the source `make image` names."""
    labels = inspect(image)["Config"]["Labels"]
    source = subprocess.run(
        [exe("git"), "config", "--get", "remote.origin.url"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    revision = subprocess.run(
        [exe("git"), "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert {k: v for k, v in labels.items() if k.startswith("org.opencontainers.image.")} == {
        "org.opencontainers.image.title": PROJECT["name"],
        "org.opencontainers.image.description": (
            "DNS provider backend for the Kubernetes DNS operator"
        ),
        "org.opencontainers.image.licenses": PROJECT["license"],
        "org.opencontainers.image.version": PROJECT["version"],
        "org.opencontainers.image.source": source,
        "org.opencontainers.image.revision": revision,
    }


def test_image_exits_0_on_sigterm_within_the_shutdown_timeout(serving: Container) -> None:
    """SIGTERM to the container: it exits 0, well within DNS_SIDECAR_SHUTDOWN_TIMEOUT."""
    started = time.monotonic()
    podman("kill", "--signal", "TERM", serving.name)
    waited = podman("wait", serving.name, timeout=SHUTDOWN_TIMEOUT + 30)
    elapsed = time.monotonic() - started
    assert (waited.stdout.strip(), elapsed < SHUTDOWN_TIMEOUT) == ("0", True), serving.logs()


def test_image_size_is_reported(image: str) -> None:
    """The image's size on this base is measured and printed (docs/deploy.md quotes it)."""
    size = int(inspect(image)["Size"])
    base = os.environ.get("DNS_SIDECAR_IMAGE_BASE") or STAND_IN
    base_size = int(inspect(base)["Size"])
    print(f"image {size / 1e6:.0f} MB on {base} ({base_size / 1e6:.0f} MB)")  # noqa: T201
    assert base_size < size < base_size + 400e6
