"""Packaging, checked offline: every overlay rendered with kustomize and validated against the
Kubernetes schemas; security, RBAC and references asserted; the Tiltfile evaluated as Starlark;
the Dockerfile linted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import starlark as sl
import yaml

from sidecar.config import loader
from sidecar.credentials import dnsclass
from sidecar.credentials.sources import FromSecret

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = sorted(p.name for p in (ROOT / "manifests" / "overlays").iterdir())
NAMESPACE = "dns-system"
CUSTOM_KINDS = {"DNSClass", "ServiceMonitor"}  # CRDs: no schema ships with kubernetes-validate
SCHEMA_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]  # native sidecars: 1.29+
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
MAX_MEMORY_MI = 128


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (make installs it into .venv)")
    return found


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(ROOT / "manifests" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], *kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in kinds]


def containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def pods(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in of_kind(docs, *WORKLOADS):
        yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def sidecar_containers(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [
        c
        for _, pod in pods(docs)
        for c in pod.get("containers", []) + pod.get("initContainers", [])
        if c["image"].startswith("dns-sidecar") and "command" not in c
    ]


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity) / (1024 * 1024)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_is_schema_valid(overlay: str, version: str) -> None:
    """kustomize renders the overlay; every object validates strictly against the schemas."""
    docs = render(overlay)
    assert docs
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            assert doc["apiVersion"].split("/")[0] in (
                "dns.homelab.mortenolsen.pro",
                "monitoring.coreos.com",
            )
            continue
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_restricted_security_on_every_container(overlay: str) -> None:
    """Restricted Pod Security, read-only root, /tmp as emptyDir, requests and limits."""
    found = 0
    for name, pod in pods(render(overlay)):
        pod_context = pod.get("securityContext", {})
        assert pod_context.get("runAsNonRoot") is True, name
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for container in containers(pod):
            found += 1
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["runAsNonRoot"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["seccompProfile"]["type"] == "RuntimeDefault", where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert {"cpu", "memory"} <= set(resources["limits"]), where
            assert mebibytes(resources["limits"]["memory"]) <= MAX_MEMORY_MI, where
    assert found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sidecar_containers_probe_and_write_only_tmp(overlay: str) -> None:
    """The sidecar has readiness and liveness probes on the management port and /tmp mounted."""
    docs = render(overlay)
    served = sidecar_containers(docs)
    assert served
    for container in served:
        args = container.get("args", [])
        port = next((a.split("=")[1] for a in args if a.startswith("--management-port=")), "8080")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert str(container[probe]["httpGet"]["port"]) in (port, "management"), probe
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts  # noqa: S108 - the mount path, not a temporary file
        assert "--management-host=0.0.0.0" in args  # the kubelet probes the pod IP


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rbac_reads_only_named_secrets_and_dnsclasses(overlay: str) -> None:
    """Roles grant get/list/watch on named Secrets and DNSClasses, nothing more."""
    docs = render(overlay)
    roles = of_kind(docs, "Role", "ClusterRole")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, role["metadata"]["name"]
            assert rule["resourceNames"], role["metadata"]["name"]
            assert "*" not in str(rule)
            if role["kind"] == "Role":
                assert (rule["apiGroups"], rule["resources"]) == ([""], ["secrets"])
            else:
                assert (rule["apiGroups"], rule["resources"]) == (
                    ["dns.homelab.mortenolsen.pro"],
                    ["dnsclasses"],
                )


def _routing_tables(docs: tuple[dict[str, Any], ...]) -> list[loader.RoutingTableSpec]:
    return [
        loader.parse(doc["data"]["routing.yaml"], doc["metadata"]["name"])
        for doc in of_kind(docs, "ConfigMap")
        if "routing.yaml" in doc.get("data", {})
    ]


def _read_by_sidecar(docs: tuple[dict[str, Any], ...]) -> tuple[set[str], set[str]]:
    """The Secrets and DNSClasses the routing tables (and their DNSClasses) make it read."""
    secrets: set[str] = set()
    classes: set[str] = set()
    for table in _routing_tables(docs):
        for account in table.accounts:
            secrets |= {c.secret_ref.name for c in account.credentials if isinstance(c, FromSecret)}
        classes |= {c.dns_class for c in table.clients if c.dns_class}
    for cls in of_kind(docs, "DNSClass"):
        auth = dnsclass.parse(cls["metadata"]["name"], cls)
        if auth.secret is not None:
            secrets.add(auth.secret.secret_ref.name)
    return secrets, classes


def _referenced_by_pods(docs: tuple[dict[str, Any], ...]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for _, pod in pods(docs):
        if pod.get("serviceAccountName"):
            found.add(("ServiceAccount", pod["serviceAccountName"]))
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                found.add(("ConfigMap", volume["configMap"]["name"]))
            if "secret" in volume:
                found.add(("Secret", volume["secret"]["secretName"]))
        for container in containers(pod):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    found.add(("Secret", ref["name"]))
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_referenced_exists(overlay: str) -> None:
    """Secrets, ConfigMaps, ServiceAccounts and DNSClasses named anywhere exist in the overlay,
    and the Roles grant exactly the Secrets and DNSClasses the sidecar reads."""
    docs = render(overlay)
    names = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in docs}
    secrets, classes = _read_by_sidecar(docs)
    assert {("DNSClass", "", name) for name in classes} <= names
    assert {("Secret", NAMESPACE, name) for name in secrets} <= names
    assert {(kind, NAMESPACE, name) for kind, name in _referenced_by_pods(docs)} <= names
    granted_secrets = {
        n for r in of_kind(docs, "Role") for rule in r["rules"] for n in rule["resourceNames"]
    }
    granted_classes = {
        n
        for r in of_kind(docs, "ClusterRole")
        for rule in r["rules"]
        for n in rule["resourceNames"]
    }
    assert (granted_secrets, granted_classes) == (secrets, classes)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_routing_configmap_hot_reloads(overlay: str) -> None:
    """The routing ConfigMap keeps its name (no hash suffix) and is mounted as a directory."""
    docs = render(overlay)
    tables = {
        d["metadata"]["name"]
        for d in of_kind(docs, "ConfigMap")
        if "routing.yaml" in d.get("data", {})
    }
    assert tables
    for container in sidecar_containers(docs):
        config = next(a for a in container["args"] if a.startswith("--config="))
        mount = next(
            m
            for m in container["volumeMounts"]
            if config.removeprefix("--config=").startswith(m["mountPath"] + "/")
        )
        assert "subPath" not in mount  # subPath mounts never see ConfigMap updates
    mounted = {
        v["configMap"]["name"]
        for _, pod in pods(docs)
        for v in pod.get("volumes", [])
        if "configMap" in v
    }
    assert tables <= mounted
    for kustomization in (ROOT / "manifests").rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for generator in spec.get("configMapGenerator", []):  # a hash suffix rolls the pods
            assert generator.get("options", {}).get("disableNameSuffixHash") is True


def test_native_sidecar_listens_on_localhost() -> None:
    """The sidecar patch adds an init container with restartPolicy Always, on loopback."""
    operator = next(
        d
        for d in render("sidecar")
        if d["metadata"]["name"] == "dns-operator" and d["kind"] == "Deployment"
    )
    sidecar = next(
        c
        for c in operator["spec"]["template"]["spec"]["initContainers"]
        if c["name"] == "dns-sidecar"
    )
    assert sidecar["restartPolicy"] == "Always"
    assert not any(a.startswith("--host") for a in sidecar["args"])  # default 127.0.0.1
    server = next(d for d in render("sidecar") if d["kind"] == "DNSClass")["spec"]["server"]
    assert server == "http://127.0.0.1:7100"


def test_standalone_service_only_the_operator_reaches_the_protocol_port() -> None:
    """The NetworkPolicy admits only operator pods to 7100; the DNSClass points at the Service."""
    docs = render("standalone")
    policy = of_kind(docs, "NetworkPolicy")[0]
    protocol_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 7100)
    assert protocol_rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "dns-operator"}}}
    ]
    service = of_kind(docs, "Service")[0]
    cls = of_kind(docs, "DNSClass")[0]
    assert cls["spec"]["server"] == (f"http://{service['metadata']['name']}.{NAMESPACE}.svc:7100")
    assert cls["spec"]["hmacAuth"]["algorithm"] in ("SHA256", "SHA512")
    assert of_kind(docs, "PodDisruptionBudget")


def test_dev_overlay_runs_the_emulator_for_the_demo_zone() -> None:
    """The dev overlay runs the emulator and routes the demo zone to it with the dev token."""
    docs = render("dev")
    emulator = next(
        d
        for d in docs
        if d["metadata"]["name"] == "cloudflare-emulator" and d["kind"] == "Deployment"
    )
    command = emulator["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["dns-sidecar", "cloudflare-emulator"]
    (table,) = _routing_tables(docs)
    demo = next(z for z in table.zones if z.name == "demo.example")
    account = next(a for a in table.accounts if a.name == demo.account)
    assert str(getattr(account, "base_url", "")).startswith("http://cloudflare-emulator.")


class _Tilt:
    """Stand-ins for Tilt's builtins that record what the Tiltfile asks for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.resources: list[str] = []
        self.images: list[str] = []

    def module(self) -> sl.Module:
        module = sl.Module()
        module["TRIGGER_MODE_MANUAL"] = "manual"
        for name in ("allow_k8s_contexts",):
            module.add_callable(name, lambda *a, **k: None)
        module.add_callable("k8s_yaml", self._k8s_yaml)
        module.add_callable("kustomize", self._kustomize)
        module.add_callable("k8s_resource", self._k8s_resource)
        module.add_callable("local_resource", self._local_resource)
        module.add_callable("fall_back_on", self._fall_back_on)
        module.add_callable("sync", self._sync)
        return module

    def ext(self, name: str) -> sl.FrozenModule:
        assert name == "ext://restart_process"
        module = sl.Module()
        module.add_callable("docker_build_with_restart", self._docker_build)
        return module.freeze()

    def _docker_build(self, ref: str, context: str, **kw: Any) -> None:
        self.images.append(ref)
        self.paths += [context, kw["dockerfile"], *kw.get("only", [])]

    def _k8s_yaml(self, source: Any) -> None:
        if not str(source).startswith("<kustomize"):
            self.paths.append(source)

    def _kustomize(self, path: str) -> str:
        self.paths.append(path)
        return f"<kustomize {path}>"

    def _k8s_resource(self, name: str, **kw: Any) -> None:
        self.resources.append(name)

    def _local_resource(self, name: str, cmd: str, **kw: Any) -> None:
        self.paths += kw.get("deps", [])

    def _fall_back_on(self, paths: list[str]) -> str:
        self.paths += paths
        return "fall_back_on"

    def _sync(self, source: str, target: str) -> str:
        self.paths.append(source)
        return "sync"


def test_tiltfile_evaluates_and_names_real_things() -> None:
    """The Tiltfile is valid Starlark; its paths exist and its resources are in the dev overlay."""
    tilt = _Tilt()
    ast = sl.parse("Tiltfile", (ROOT / "Tiltfile").read_text())
    sl.eval(tilt.module(), ast, sl.Globals.standard(), sl.FileLoader(tilt.ext))
    for path in tilt.paths:
        assert (ROOT / path).exists(), path
    workloads = {d["metadata"]["name"] for d in of_kind(render("dev"), *WORKLOADS)}
    assert set(tilt.resources) <= workloads
    assert tilt.images == ["dns-sidecar"]
    cluster = list(yaml.safe_load_all((ROOT / "dev" / "ctlptl.yaml").read_text()))
    assert {doc["kind"] for doc in cluster} == {"Registry", "Cluster"}


def test_dockerfile_passes_hadolint_and_runs_as_non_root() -> None:
    """hadolint finds nothing; the image runs as a numeric user with `dns-sidecar serve`."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    result = subprocess.run(
        [tool("hadolint"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "USER 65532:65532" in dockerfile
    assert "EXPOSE 7100 8080" in dockerfile
    assert 'ENTRYPOINT ["dns-sidecar", "serve"]' in dockerfile
    assert "PYTHONDONTWRITEBYTECODE=1" in dockerfile
    assert "-c constraints.txt" in dockerfile  # the pins the tests ran with
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for copied in ("pyproject.toml", "constraints.txt", "README.md", "sidecar/"):
        assert f"!{copied}" in ignored
