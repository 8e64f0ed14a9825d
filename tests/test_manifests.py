"""Packaging, checked offline: every overlay rendered with kustomize and validated against the
Kubernetes schemas and the operator's DNSClass CRD; security, RBAC and references asserted; the
native sidecar applied to the operator's own Deployment (kustomize and the Helm post-renderer);
the Tiltfile evaluated as Starlark; the Dockerfile linted and `make image` dry-run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import starlark as sl
import yaml

from sidecar.config import loader
from sidecar.coordination.metrics import CoordinationMetrics
from sidecar.credentials import dnsclass
from sidecar.credentials.sources import FromSecret
from sidecar.observability.metrics import Metrics
from sidecar.records.values import canonical_values

REPO = Path(__file__).resolve().parent.parent
MANIFESTS = REPO / "manifests"
DATA = Path(__file__).resolve().parent / "data"
OVERLAYS = sorted(p.name for p in (MANIFESTS / "overlays").iterdir())
HELM = "sidecar-on-helm-chart"  # the operator's Helm chart output through the post-renderer
BUILDS = [*OVERLAYS, HELM]
WITHOUT_WORKLOADS = {"sidecar"}  # objects to apply beside an operator you run; no Deployment
WITH_WORKLOADS = [b for b in BUILDS if b not in WITHOUT_WORKLOADS]
# CRDs: no schema ships with kubernetes-validate
CUSTOM_KINDS = {
    "DNSClass",
    "ServiceMonitor",
    "PrometheusRule",
    "Certificate",
    "ClusterIssuer",
    "Issuer",
}
SCHEMA_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]  # native sidecars: 1.29+
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
MAX_MEMORY_MI = 128
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
OPERATOR = yaml.safe_load((MANIFESTS / "operator" / "operator.yaml").read_text())["data"]


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (make installs it into .venv)")
    return found


def kustomize(directory: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def post_render(chart: str, **env: str) -> tuple[dict[str, Any], ...]:
    """Run the Helm post-renderer as Helm does: the chart's manifests on stdin."""
    result = subprocess.run(
        [str(MANIFESTS / "components" / "native-sidecar" / "helm-post-renderer.sh")],
        input=chart,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "KUBECTL": tool("kubectl"), **env},
    )
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@cache
def render(build: str) -> tuple[dict[str, Any], ...]:
    if build == HELM:
        return post_render((DATA / "operator-helm.yaml").read_text())
    return kustomize(MANIFESTS / "overlays" / build)


def of_kind(docs: tuple[dict[str, Any], ...], *kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in kinds]


def named(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    (found,) = (d for d in of_kind(docs, kind) if d["metadata"]["name"] == name)
    return found


def containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def pods(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in of_kind(docs, *WORKLOADS):
        yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def namespaced_pods(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in of_kind(docs, *WORKLOADS):
        yield doc["metadata"]["namespace"], doc["spec"]["template"]["spec"]


def is_sidecar_image(image: str) -> bool:
    return image.rsplit("/", maxsplit=1)[-1].split(":", maxsplit=1)[0] == "dns-sidecar"


def sidecar_containers(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [
        c
        for _, pod in pods(docs)
        for c in containers(pod)
        if is_sidecar_image(c["image"]) and "command" not in c
    ]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity) / (1024 * 1024)


def kustomization(overlay: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(
        (MANIFESTS / "overlays" / overlay / "kustomization.yaml").read_text()
    )
    return spec


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_is_schema_valid(build: str, version: str) -> None:
    """kustomize renders the overlay; every object validates strictly against the schemas."""
    docs = render(build)
    assert docs
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            assert doc["apiVersion"].split("/")[0] in (
                "dns.homelab.mortenolsen.pro",
                "monitoring.coreos.com",
                "cert-manager.io",
            )
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def _crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load((DATA / "dnsclass-crd.yaml").read_text())
    return crd


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD's structural schema as JSON Schema that refuses unknown fields, as
    `kubectl apply --validate=strict` does (the API server would prune them silently)."""
    strict = {k: v for k, v in schema.items() if k != "x-kubernetes-preserve-unknown-fields"}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        strict["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        strict["additionalProperties"] = False
    return strict


def _dnsclass_problems(cls: dict[str, Any]) -> list[str]:
    """What the operator's CRD schema and its admission webhook would refuse."""
    (version,) = _crd()["spec"]["versions"]
    validator = jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(cls)]
    auth = cls.get("spec", {}).get("hmacAuth")
    if auth is not None and ("secret" in auth) == ("secretRef" in auth):
        problems.append("hmacAuth needs exactly one of secretRef and secret (webhook)")
    return problems


def test_the_crd_copy_is_a_valid_crd_and_dev_installs_the_same() -> None:
    """The CRD copy is a valid, cluster-scoped v1alpha1 CRD; dev/ installs exactly that schema."""
    crd = _crd()
    for version in SCHEMA_VERSIONS:
        kubernetes_validate.validate(crd, version, strict=True)
    assert (crd["spec"]["group"], crd["spec"]["scope"]) == (
        "dns.homelab.mortenolsen.pro",
        "Cluster",
    )
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1alpha1"]
    assert yaml.safe_load((REPO / "dev" / "dnsclass-crd.yaml").read_text()) == crd


def test_the_crd_check_refuses_what_the_operator_refuses() -> None:
    """The schema check catches a bad URL, algorithm, TTL, unknown field and a double secret."""
    good = {
        "apiVersion": "dns.homelab.mortenolsen.pro/v1alpha1",
        "kind": "DNSClass",
        "metadata": {"name": "x"},
        "spec": {"server": "http://x:7100", "hmacAuth": {"secret": "s"}},
    }
    assert _dnsclass_problems(good) == []
    bad = [
        {"server": "x:7100"},
        {"server": "http://x", "hmacAuth": {"algorithm": "MD5", "secret": "s"}},
        {"server": "http://x", "defaultTTL": 0},
        {"server": "http://x", "timeoutSeconds": 0},
        {"server": "http://x", "serverURL": "http://x"},
        {"server": "http://x", "hmacAuth": {"secretRef": {"name": "n", "key": "k"}}},
        {"server": "http://x", "hmacAuth": {"secret": "s", "secretRef": {}}},
        {"server": "http://x", "hmacAuth": {}},
    ]
    assert [len(_dnsclass_problems({**good, "spec": spec})) > 0 for spec in bad] == [True] * 8


@pytest.mark.parametrize("build", BUILDS)
def test_every_dnsclass_validates_against_the_operator_crd(build: str) -> None:
    """Every DNSClass in every overlay passes the operator's CRD schema and webhook rules."""
    classes = of_kind(render(build), "DNSClass")
    assert classes
    assert {c["metadata"]["name"]: _dnsclass_problems(c) for c in classes} == {
        c["metadata"]["name"]: [] for c in classes
    }


@pytest.mark.parametrize("build", BUILDS)
def test_every_dnsclass_points_at_a_served_url(build: str) -> None:
    """A DNSClass names a Service of the overlay on its protocol port, or the pod's loopback
    where a native sidecar serves it."""
    docs = render(build)
    tls = any(_env(c).get("DNS_SIDECAR_TLS_CERT_FILE") for c in sidecar_containers(docs))
    scheme = "https" if tls else "http"  # components/tls: the DNSClass calls https://
    services = {
        f"{scheme}://{s['metadata']['name']}.{s['metadata']['namespace']}.svc:{p['port']}"
        for s in of_kind(docs, "Service")
        for p in s["spec"]["ports"]
        if p["name"] == "protocol"
    }
    native = build in WITHOUT_WORKLOADS or any(
        c.get("restartPolicy") == "Always" for c in sidecar_containers(docs)
    )
    loopback = {"http://127.0.0.1:7100"} if native else set()
    for cls in of_kind(docs, "DNSClass"):
        assert cls["spec"]["server"] in services | loopback, cls["metadata"]["name"]


@pytest.mark.parametrize("build", WITH_WORKLOADS)
def test_restricted_security_on_every_container(build: str) -> None:
    """Restricted Pod Security, read-only root, requests and limits, on every container
    (the sidecar, Valkey, the emulator and the stand-in operator alike)."""
    found = 0
    for name, pod in pods(render(build)):
        pod_context = pod.get("securityContext", {})
        assert pod_context.get("runAsNonRoot") is True, name
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for container in containers(pod):
            found += 1
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context.get("runAsNonRoot", pod_context["runAsNonRoot"]) is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            seccomp = context.get("seccompProfile", pod_context["seccompProfile"])
            assert seccomp["type"] == "RuntimeDefault", where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert {"cpu", "memory"} <= set(resources["limits"]), where
            assert mebibytes(resources["limits"]["memory"]) <= MAX_MEMORY_MI, where
    assert found


@pytest.mark.parametrize("build", [b for b in WITH_WORKLOADS if b != "dev"])
def test_every_long_running_container_is_probed(build: str) -> None:
    """Outside dev, every container that keeps running has readiness and liveness probes."""
    unprobed = [
        f"{name}/{c['name']}"
        for name, pod in pods(render(build))
        for c in containers(pod)
        if c in pod["containers"] or c.get("restartPolicy") == "Always"
        if not {"readinessProbe", "livenessProbe"} <= set(c)
    ]
    assert unprobed == []


@pytest.mark.parametrize("build", WITH_WORKLOADS)
def test_sidecar_containers_probe_and_write_only_tmp(build: str) -> None:
    """The sidecar has readiness and liveness probes on the management port and /tmp mounted."""
    docs = render(build)
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


@pytest.mark.parametrize("build", BUILDS)
def test_rbac_reads_only_named_secrets_and_dnsclasses(build: str) -> None:
    """Roles grant get/list/watch on named Secrets and DNSClasses, and on DNSRecords (the whole
    collection, read-only, in a ClusterRole of its own), nothing more."""
    docs = render(build)
    roles = [r for r in of_kind(docs, "Role", "ClusterRole") if _ours(r)]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, role["metadata"]["name"]
            assert "*" not in str(rule)
            if rule["resources"] == ["dnsrecords"]:
                assert (role["kind"], rule) == (
                    "ClusterRole",
                    {
                        "apiGroups": ["dns.homelab.mortenolsen.pro"],
                        "resources": ["dnsrecords"],
                        "verbs": ["get", "list", "watch"],
                    },
                )
                continue
            assert rule["resourceNames"], role["metadata"]["name"]
            if role["kind"] == "Role":
                assert (rule["apiGroups"], rule["resources"]) == ([""], ["secrets"])
            else:
                assert (rule["apiGroups"], rule["resources"]) == (
                    ["dns.homelab.mortenolsen.pro"],
                    ["dnsclasses"],
                )


def _ours(doc: dict[str, Any]) -> bool:
    return str(doc["metadata"]["name"]).startswith("dns-sidecar")


def _routing_tables(
    docs: tuple[dict[str, Any], ...],
) -> list[tuple[str, loader.RoutingTableSpec]]:
    """Each routing table with its ConfigMap's namespace (where its secretRefs point)."""
    return [
        (
            doc["metadata"]["namespace"],
            loader.parse(doc["data"]["routing.yaml"], doc["metadata"]["name"]),
        )
        for doc in of_kind(docs, "ConfigMap")
        if "routing.yaml" in doc.get("data", {})
    ]


def _read_by_sidecar(docs: tuple[dict[str, Any], ...]) -> tuple[set[tuple[str, str]], set[str]]:
    """The (namespace, Secret)s and DNSClasses the routing tables and their DNSClasses read."""
    secrets: set[tuple[str, str]] = set()
    classes: set[str] = set()
    for namespace, table in _routing_tables(docs):
        for account in table.accounts:
            secrets |= {
                (c.secret_ref.namespace or namespace, c.secret_ref.name)
                for c in account.credentials
                if isinstance(c, FromSecret)
            }
        classes |= {c.dns_class for c in table.clients if c.dns_class}
    for cls in of_kind(docs, "DNSClass"):
        auth = dnsclass.parse(cls["metadata"]["name"], cls)
        if auth.secret is not None:
            ref = auth.secret.secret_ref
            secrets.add((ref.namespace or "", ref.name))
    return secrets, classes


def _referenced_by_pods(docs: tuple[dict[str, Any], ...]) -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    for namespace, pod in namespaced_pods(docs):
        if pod.get("serviceAccountName"):
            found.add(("ServiceAccount", namespace, pod["serviceAccountName"]))
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                found.add(("ConfigMap", namespace, volume["configMap"]["name"]))
            if "secret" in volume:
                found.add(("Secret", namespace, volume["secret"]["secretName"]))
        for container in containers(pod):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    found.add(("Secret", namespace, ref["name"]))
    return found


def created_by_docs() -> set[tuple[str, str, str]]:
    """The Secrets docs/deploy.md tells users to create: ("Secret", namespace, name)."""
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    made = re.findall(r"kubectl -n ([\w-]+) create secret generic ([\w-]+)", text)
    return {("Secret", namespace, name) for namespace, name in made}


NOT_DEV = [b for b in BUILDS if b != "dev"]


@pytest.mark.parametrize("build", NOT_DEV)
def test_no_overlay_but_dev_renders_a_secret(build: str) -> None:
    """Outside dev no render holds a Secret (nor a generator's), so `kubectl apply -k` of it
    creates or replaces no Secret: the values users created stay theirs."""
    docs = render(build)
    assert [d["metadata"]["name"] for d in of_kind(docs, "Secret")] == []


def test_no_secret_is_written_anywhere_but_dev() -> None:
    """No manifest outside overlays/dev declares a Secret or an active secretGenerator, so no
    overlay built on them (or on a file not listed yet) can overwrite an existing Secret's data
    with a placeholder when applied."""
    dev = MANIFESTS / "overlays" / "dev"
    found = [
        str(path.relative_to(REPO))
        for path in sorted(MANIFESTS.rglob("*.yaml"))
        if dev not in path.parents
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and (doc.get("kind") == "Secret" or "secretGenerator" in doc)
    ]
    assert found == []


@pytest.mark.parametrize("build", BUILDS)
def test_everything_referenced_exists(build: str) -> None:
    """ConfigMaps, ServiceAccounts and DNSClasses named anywhere exist in the overlay, Secrets in
    dev or as a command in docs/deploy.md, and the Roles grant exactly the Secrets and
    DNSClasses the sidecar reads."""
    docs = render(build)
    names = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in docs}
    names |= {  # the Secrets cert-manager writes for the overlay's Certificates
        ("Secret", d["metadata"]["namespace"], d["spec"]["secretName"])
        for d in of_kind(docs, "Certificate")
    }
    secrets, classes = _read_by_sidecar(docs)
    assert {("DNSClass", "", name) for name in classes} <= names
    wanted_secrets = {("Secret", ns, name) for ns, name in secrets}
    # the chart's own pod mounts its webhook certificate, which cert-manager makes
    by_pods = _referenced_by_pods(docs) if build != HELM else set()
    if build == "dev":  # the one overlay that carries its (development) Secrets
        assert wanted_secrets | by_pods <= names
    else:  # users create them with the commands docs/deploy.md gives
        assert {r for r in by_pods if r[0] != "Secret"} <= names
        wanted = {r for r in wanted_secrets | by_pods if r[0] == "Secret"}
        missing = wanted - names - created_by_docs()  # names: what cert-manager writes
        assert missing == set()
    granted_secrets = {
        (r["metadata"]["namespace"], n)
        for r in of_kind(docs, "Role")
        if _ours(r)
        for rule in r["rules"]
        for n in rule["resourceNames"]
    }
    granted_classes = {
        n
        for r in of_kind(docs, "ClusterRole")
        if _ours(r)
        for rule in r["rules"]
        if rule["resources"] == ["dnsclasses"]
        for n in rule["resourceNames"]
    }
    assert (granted_secrets, granted_classes) == (secrets, classes)


@pytest.mark.parametrize("build", BUILDS)
def test_roles_are_bound_to_the_pods_that_read(build: str) -> None:
    """Every binding of our Roles names a ServiceAccount that runs a sidecar, in its namespace
    (or, for the sidecar overlay alone, the operator's ServiceAccount from manifests/operator)."""
    docs = render(build)
    runners = {
        (namespace, pod.get("serviceAccountName", "default"))
        for namespace, pod in namespaced_pods(docs)
        if any(is_sidecar_image(c["image"]) and "command" not in c for c in containers(pod))
    }
    if build in WITHOUT_WORKLOADS:
        runners = {(OPERATOR["namespace"], OPERATOR["serviceAccount"])}
    bindings = [b for b in of_kind(docs, "RoleBinding", "ClusterRoleBinding") if _ours(b)]
    assert bindings
    for binding in bindings:
        subjects = {(s["namespace"], s["name"]) for s in binding["subjects"]}
        assert subjects <= runners, binding["metadata"]["name"]
        role = named(docs, binding["roleRef"]["kind"], binding["roleRef"]["name"])
        assert _ours(role)


@pytest.mark.parametrize("build", [b for b in WITH_WORKLOADS if b != HELM])
def test_every_sidecar_with_a_dnsclass_client_may_read_dnsrecords(build: str) -> None:
    """Each ServiceAccount running a sidecar whose routing table has a dnsClass client is bound
    to a ClusterRole with get, list and watch on dnsrecords. (Helm: the operator's own
    ClusterRole already grants its ServiceAccount that and more; dev binds its stand-in.)"""
    docs = render(build)
    assert any(c.dns_class for _, table in _routing_tables(docs) for c in table.clients)
    runners = {
        (namespace, pod.get("serviceAccountName", "default"))
        for namespace, pod in namespaced_pods(docs)
        if any(is_sidecar_image(c["image"]) and "command" not in c for c in containers(pod))
    }
    readers = {
        (subject["namespace"], subject["name"])
        for binding in of_kind(docs, "ClusterRoleBinding")
        for rule in named(docs, "ClusterRole", binding["roleRef"]["name"])["rules"]
        if rule["resources"] == ["dnsrecords"] and set(rule["verbs"]) == {"get", "list", "watch"}
        for subject in binding["subjects"]
    }
    assert runners
    assert runners <= readers


@pytest.mark.parametrize("build", WITH_WORKLOADS)
def test_routing_configmap_hot_reloads(build: str) -> None:
    """The routing ConfigMap keeps its name (no hash suffix) and is mounted as a directory."""
    docs = render(build)
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
    for spec_file in MANIFESTS.rglob("kustomization.yaml"):
        spec = yaml.safe_load(spec_file.read_text())
        for generator in spec.get("configMapGenerator", []):  # a hash suffix rolls the pods
            assert generator.get("options", {}).get("disableNameSuffixHash") is True


@pytest.mark.parametrize("build", WITH_WORKLOADS)
def test_services_and_policies_select_real_pods(build: str) -> None:
    """Every Service, NetworkPolicy and PodDisruptionBudget selects the pods of some workload
    in its namespace."""
    docs = render(build)
    labels = [
        (d["metadata"]["namespace"], d["spec"]["template"]["metadata"]["labels"])
        for d in of_kind(docs, *WORKLOADS)
    ]

    def selects(namespace: str, selector: dict[str, str]) -> bool:
        return any(ns == namespace and selector.items() <= pod.items() for ns, pod in labels)

    for doc in of_kind(docs, "Service", "NetworkPolicy", "PodDisruptionBudget"):
        selector = {
            "Service": lambda s: s["spec"]["selector"],
            "NetworkPolicy": lambda s: s["spec"]["podSelector"]["matchLabels"],
            "PodDisruptionBudget": lambda s: s["spec"]["selector"]["matchLabels"],
        }[doc["kind"]](doc)
        assert selects(doc["metadata"]["namespace"], selector), doc["metadata"]["name"]


def _operator_peer() -> list[dict[str, Any]]:
    return [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": OPERATOR["namespace"]}
            },
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": OPERATOR["podName"]}},
        }
    ]


def test_the_operator_location_is_the_operators_own_default() -> None:
    """manifests/operator names the operator's Helm defaults, and renders nothing itself."""
    assert OPERATOR == {
        "namespace": "dns-operator-system",
        "podName": "dns-operator",
        "serviceAccount": "dns-operator",
    }
    assert kustomize(MANIFESTS / "operator") == ()


@pytest.mark.parametrize("build", ["standalone", "standalone-ha", "multi-class", "second-instance"])
def test_only_the_operator_reaches_the_protocol_port(build: str) -> None:
    """The NetworkPolicy admits to 7100 only the operator's pods in the operator's namespace."""
    docs = render(build)
    (policy,) = (
        p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] != "dns-sidecar-redis"
    )
    protocol_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 7100)
    assert protocol_rule["from"] == _operator_peer()


def test_standalone_runs_one_replica_without_a_disruption_budget() -> None:
    """Without Redis: one replica, never two during a rollout, and no PDB to block a drain."""
    docs = render("standalone")
    (deployment,) = of_kind(docs, "Deployment")
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]) == (
        1,
        {"type": "Recreate"},
    )
    assert of_kind(docs, "PodDisruptionBudget") == []
    env = {e["name"] for c in sidecar_containers(docs) for e in c.get("env", [])}
    assert not any(name.startswith("DNS_SIDECAR_REDIS") for name in env)
    service = named(docs, "Service", "dns-sidecar-cloudflare")
    assert named(docs, "DNSClass", "cloudflare")["spec"] == {
        "server": f"http://{service['metadata']['name']}.dns-system.svc:7100",
        "hmacAuth": {
            "algorithm": "SHA256",
            "secretRef": {
                "name": "cloudflare-dns-hmac",
                "namespace": "dns-system",
                "key": "hmac-secret",
            },
        },
    }


def test_standalone_ha_runs_three_replicas_on_one_valkey() -> None:
    """standalone-ha: three replicas rolling one at a time, a PDB, and the sidecar wired to the
    Valkey Service with the password from the Secret key Valkey itself requires."""
    docs = render("standalone-ha")
    sidecar = named(docs, "Deployment", "dns-sidecar-cloudflare")
    assert sidecar["spec"]["replicas"] == 3
    assert sidecar["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert named(docs, "PodDisruptionBudget", "dns-sidecar-cloudflare")["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/instance": "dns-sidecar-cloudflare"}},
    }
    (container,) = sidecar_containers(docs)
    env = {e["name"]: e.get("value") for e in container["env"]}
    redis = named(docs, "Service", "dns-sidecar-redis")
    assert env["DNS_SIDECAR_REDIS_URL"] == (
        f"redis://{redis['metadata']['name']}:{redis['spec']['ports'][0]['port']}/0"
    )
    assert env["DNS_SIDECAR_REDIS_PREFIX"] == "dns-sidecar-cloudflare"
    grace = sidecar["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    shutdown = float(env.get("DNS_SIDECAR_SHUTDOWN_TIMEOUT") or 25)
    # a rolling update without a gap: keep accepting while the endpoint removal spreads
    assert 0 < float(env["DNS_SIDECAR_DRAIN_DELAY"]) < shutdown < grace
    password_file = Path(env["DNS_SIDECAR_REDIS_PASSWORD_FILE"])
    mount = next(
        m for m in container["volumeMounts"] if Path(m["mountPath"]) == password_file.parent
    )
    volume = next(
        v for v in sidecar["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    assert volume["secret"] == {
        "secretName": "dns-sidecar-redis",
        "items": [{"key": "password", "path": password_file.name}],
    }
    valkey = named(docs, "Deployment", "dns-sidecar-redis")
    assert valkey["spec"]["replicas"] == 1
    (server,) = valkey["spec"]["template"]["spec"]["containers"]
    assert server["image"] == "docker.io/valkey/valkey:8.1-alpine"
    assert server["command"] == ["valkey-server"]
    assert server["args"] == [
        "--port", "6379", "--dir", "/data", "--save", "", "--appendonly", "no",
        "--maxmemory", "96mb", "--maxmemory-policy", "noeviction",
        "--requirepass", "$(VALKEY_PASSWORD)",
    ]  # fmt: skip
    password = {"secretKeyRef": {"name": "dns-sidecar-redis", "key": "password"}}
    assert {e["name"]: e["valueFrom"] for e in server["env"]} == {"VALKEY_PASSWORD": password}
    assert server["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert valkey["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "emptyDir": {"sizeLimit": "16Mi"}}
    ]


def test_standalone_ha_admits_only_sidecar_pods_to_valkey() -> None:
    """Valkey's NetworkPolicy admits dns-sidecar pods on 6379 and nothing else, and lets Valkey
    reach nothing."""
    docs = render("standalone-ha")
    policy = named(docs, "NetworkPolicy", "dns-sidecar-redis")
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/instance": "dns-sidecar-redis"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "dns-sidecar"}}}
                ],
                "ports": [{"port": 6379, "protocol": "TCP"}],
            }
        ],
    }
    admitted = [
        d["metadata"]["name"]
        for d in of_kind(docs, *WORKLOADS)
        if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name")
        == "dns-sidecar"
    ]
    assert admitted == ["dns-sidecar-cloudflare"]


def test_multi_class_serves_two_dnsclasses_from_one_service() -> None:
    """multi-class: one Service, two DNSClasses naming it, one dnsClass client each with its own
    zones, and RBAC naming exactly their Secrets and DNSClasses."""
    docs = render("multi-class")
    (service,) = of_kind(docs, "Service")
    url = f"http://{service['metadata']['name']}.dns-system.svc:7100"
    assert {c["metadata"]["name"]: c["spec"]["server"] for c in of_kind(docs, "DNSClass")} == {
        "cloudflare": url,
        "home": url,
    }
    ((_, table),) = _routing_tables(docs)
    assert [(c.name, c.dns_class, c.zones) for c in table.clients] == [
        ("cloudflare", "cloudflare", ["example.com"]),
        ("home", "home", ["home.example.org"]),
    ]
    role = named(docs, "Role", "dns-sidecar-cloudflare")
    cluster_role = named(docs, "ClusterRole", "dns-sidecar-cloudflare-dnsclass")
    assert [r["resourceNames"] for r in role["rules"] + cluster_role["rules"]] == [
        ["cloudflare-api-token", "cloudflare-dns-hmac", "home-dns-hmac"],
        ["cloudflare", "home"],
    ]


def test_second_instance_renames_everything_consistently() -> None:
    """second-instance: every object is dns-sidecar-home[-...], nothing of the first instance
    remains, the ClusterRole names DNSClass home and the DNSClass names the renamed Service."""
    docs = render("second-instance")
    ours = {
        (d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] not in ("Secret", "DNSClass")
    }
    assert ours == {
        ("ServiceAccount", "dns-sidecar-home"),
        ("Role", "dns-sidecar-home"),
        ("RoleBinding", "dns-sidecar-home"),
        ("ClusterRole", "dns-sidecar-home-dnsclass"),
        ("ClusterRoleBinding", "dns-sidecar-home-dnsclass"),
        ("ClusterRole", "dns-sidecar-dnsrecords"),  # shared by every instance, read-only
        ("ClusterRoleBinding", "dns-sidecar-home-dnsrecords"),
        ("ConfigMap", "dns-sidecar-home-routing"),
        ("Deployment", "dns-sidecar-home"),
        ("Service", "dns-sidecar-home"),
        ("NetworkPolicy", "dns-sidecar-home"),
    }
    assert "cloudflare-dns-hmac" not in str(docs)
    assert "dns-sidecar-cloudflare" not in str(docs)
    assert [c["metadata"]["name"] for c in of_kind(docs, "DNSClass")] == ["home"]
    assert named(docs, "DNSClass", "home")["spec"]["server"] == (
        "http://dns-sidecar-home.dns-system.svc:7100"
    )
    assert named(docs, "ClusterRole", "dns-sidecar-home-dnsclass")["rules"][0]["resourceNames"] == [
        "home"
    ]
    pod = named(docs, "Deployment", "dns-sidecar-home")["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "dns-sidecar-home"
    assert pod["spec"]["serviceAccountName"] == "dns-sidecar-home"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_sets_the_image(overlay: str) -> None:
    """Every overlay has `images:` for dns-sidecar (the release tag, except dev where Tilt
    builds), and every dns-sidecar container renders with exactly that image."""
    (entry,) = (i for i in kustomization(overlay)["images"] if i["name"] == "dns-sidecar")
    assert entry == {"name": "dns-sidecar", "newTag": "dev" if overlay == "dev" else VERSION}
    images = {c["image"] for _, pod in pods(render(overlay)) for c in containers(pod)}
    assert {i for i in images if is_sidecar_image(i)} <= {f"dns-sidecar:{entry['newTag']}"}


@pytest.mark.parametrize("overlay", sorted(set(OVERLAYS) - WITHOUT_WORKLOADS))
def test_kustomize_edit_set_image_reaches_every_container(overlay: str, tmp_path: Path) -> None:
    """What `kustomize edit set image dns-sidecar=REGISTRY/dns-sidecar:TAG` writes into the
    overlay changes every dns-sidecar container, the native sidecar's included."""
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    spec_file = copy / "overlays" / overlay / "kustomization.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["images"] = [
        i if i["name"] != "dns-sidecar" else {
            "name": "dns-sidecar", "newName": "registry.example/dns-sidecar", "newTag": "9.9.9"
        }
        for i in spec["images"]
    ]  # fmt: skip
    spec_file.write_text(yaml.safe_dump(spec))
    docs = kustomize(copy / "overlays" / overlay)
    images = {c["image"] for _, pod in pods(docs) for c in containers(pod)}
    assert {i for i in images if "dns-sidecar" in i} == {"registry.example/dns-sidecar:9.9.9"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_overlay_ships_an_operator(overlay: str) -> None:
    """No overlay renders an operator Deployment or the operator's Namespace (dev runs the real
    operator from its own repository, dev/operator); the sidecar overlay renders the objects a
    native sidecar needs, and no workload at all."""
    docs = render(overlay)
    operators = [
        d["metadata"]["name"]
        for d in of_kind(docs, *WORKLOADS)
        if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name")
        == OPERATOR["podName"]
    ]
    namespaces = [d["metadata"]["name"] for d in of_kind(docs, "Namespace")]
    assert (operators, OPERATOR["namespace"] in namespaces) == ([], False)
    if overlay in WITHOUT_WORKLOADS:
        assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
            ("ClusterRole", "dns-sidecar-dnsclass-home"),
            ("ClusterRoleBinding", "dns-sidecar-dnsclass-home"),
            ("ConfigMap", "dns-sidecar-routing"),
            ("DNSClass", "home"),
            ("Role", "dns-sidecar"),
            ("RoleBinding", "dns-sidecar"),
        ]
        cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "DNSClass"}
        assert {d["metadata"]["namespace"] for d in docs if d["kind"] not in cluster_scoped} == {
            OPERATOR["namespace"]
        }


def _native_sidecar(docs: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    operator = next(
        d
        for d in of_kind(docs, "Deployment")
        if d["metadata"]["name"] == "dns-operator-controller-manager"
    )
    pod = operator["spec"]["template"]["spec"]
    (sidecar,) = (c for c in pod["initContainers"] if c["name"] == "dns-sidecar")
    return pod, sidecar


@pytest.mark.parametrize("build", [HELM])
def test_native_sidecar_listens_on_localhost(build: str) -> None:
    """The component adds an init container with restartPolicy Always on loopback, its volumes,
    and a DNSClass whose server is that loopback."""
    docs = render(build)
    pod, sidecar = _native_sidecar(docs)
    assert sidecar["restartPolicy"] == "Always"
    assert not any(a.startswith("--host") for a in sidecar["args"])  # default 127.0.0.1
    assert {v["name"] for v in pod["volumes"]} >= {"dns-sidecar-routing", "dns-sidecar-tmp"}
    assert named(docs, "DNSClass", "home")["spec"]["server"] == "http://127.0.0.1:7100"


def test_helm_post_renderer_keeps_the_chart_and_adds_the_sidecar() -> None:
    """The post-renderer returns the chart's objects unchanged but for the operator's pod, which
    gains the sidecar and its volumes; DNS_SIDECAR_IMAGE picks the image."""
    chart_text = (DATA / "operator-helm.yaml").read_text()
    chart = tuple(d for d in yaml.safe_load_all(chart_text) if d)
    docs = post_render(chart_text, DNS_SIDECAR_IMAGE="localhost:5005/dns-sidecar:1.2.3")
    before = named(chart, "Deployment", "dns-operator-controller-manager")["spec"]["template"]
    after = named(docs, "Deployment", "dns-operator-controller-manager")["spec"]["template"]
    assert after["spec"]["containers"] == before["spec"]["containers"]
    assert after["spec"]["serviceAccountName"] == OPERATOR["serviceAccount"]
    assert sorted(v["name"] for v in after["spec"]["volumes"]) == [
        "cert",
        "dns-sidecar-routing",
        "dns-sidecar-tmp",
    ]
    (sidecar,) = after["spec"]["initContainers"]
    assert sidecar["image"] == "localhost:5005/dns-sidecar:1.2.3"
    assert named(docs, "ServiceAccount", "dns-operator") == named(
        chart, "ServiceAccount", "dns-operator"
    )
    untagged = post_render(chart_text, DNS_SIDECAR_IMAGE="localhost:5005/dns-sidecar")
    _, sidecar = _native_sidecar(untagged)
    assert sidecar["image"] == f"localhost:5005/dns-sidecar:{VERSION}"


def test_kubectl_patch_route_names_the_operators_deployment() -> None:
    """The patch file applied with `kubectl patch` names the operator's Deployment, carries the
    release image, and is the same patch the component applies."""
    component = yaml.safe_load(
        (MANIFESTS / "components" / "native-sidecar" / "kustomization.yaml").read_text()
    )
    assert component["patches"] == [
        {
            "path": "operator-patch.yaml",
            "target": {
                "kind": "Deployment",
                "labelSelector": "app.kubernetes.io/name=dns-operator",
            },
        }
    ]
    patch = yaml.safe_load(
        (MANIFESTS / "components" / "native-sidecar" / "operator-patch.yaml").read_text()
    )
    assert patch["metadata"] == {"name": "dns-operator-controller-manager"}
    (sidecar,) = patch["spec"]["template"]["spec"]["initContainers"]
    assert sidecar["image"] == f"dns-sidecar:{VERSION}"


def test_deploy_steps_name_real_paths_and_overlays() -> None:
    """Every repository path and overlay docs/deploy.md names exists, and its overlay table
    lists every overlay."""
    readme = (REPO / "docs" / "deploy.md").read_text()
    paths = set(re.findall(r"(?<![\w/.-])((?:manifests|dev|tests/data)/[\w./-]*[\w])", readme))
    assert {p for p in paths if not (REPO / p).exists()} == set()
    applied = set(re.findall(r"kubectl apply -k manifests/overlays/([\w-]+)", readme))
    assert applied - set(OVERLAYS) == set()
    assert {"standalone", "standalone-ha", "sidecar"} <= applied
    for overlay in OVERLAYS:
        assert f"`{overlay}`" in readme, overlay  # each overlay is in the table


def test_dev_overlay_runs_the_emulator_for_the_demo_zones() -> None:
    """The dev overlay runs the emulator and routes the demo zone to it with the dev token."""
    docs = render("dev")
    emulator = named(docs, "Deployment", "cloudflare-emulator")
    command = emulator["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["dns-sidecar", "cloudflare-emulator"]
    args = emulator["spec"]["template"]["spec"]["containers"][0]["args"]
    served = {a.removeprefix("--zone=") for a in args if a.startswith("--zone=")}
    routed = set()
    for _, table in _routing_tables(docs):
        for zone in table.zones:
            account = next(a for a in table.accounts if a.name == zone.account)
            if str(getattr(account, "base_url", "")).startswith("http://cloudflare-emulator."):
                routed.add(zone.name)
    assert (served, routed) == ({"demo.example"}, served)


class _Tilt:
    """Stand-ins for Tilt's builtins that record what the Tiltfile asks for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.resources: list[str] = []
        self.images: list[str] = []
        self.commands: list[str] = []
        self.kustomized: list[str] = []
        self.deps: dict[str, list[str]] = {}
        self.objects: list[str] = []

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
        module.add_callable("local", self._local)
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
        self.kustomized.append(path)
        return f"<kustomize {path}>"

    def _k8s_resource(self, name: str, **kw: Any) -> None:
        self.resources.append(name)
        self.objects += kw.get("objects", [])
        self.deps[name] = list(kw.get("resource_deps", []))

    def _local_resource(self, name: str, cmd: str, **kw: Any) -> None:
        self.paths += kw.get("deps", [])
        self.commands.append(cmd)
        self.deps[name] = list(kw.get("resource_deps", []))

    def _local(self, cmd: str) -> str:
        self.commands.append(cmd)
        return ""

    def _fall_back_on(self, paths: list[str]) -> str:
        self.paths += paths
        return "fall_back_on"

    def _sync(self, source: str, target: str) -> str:
        self.paths.append(source)
        return "sync"


def test_tiltfile_evaluates_and_names_real_things() -> None:
    """The Tiltfile is valid Starlark; the paths and scripts it names exist; its resources are
    the dev overlay's workloads and the real operator's Deployment, whose Issuer/Certificates
    and the DNSClass wait for cert-manager and the operator's webhook."""
    tilt = _Tilt()
    ast = sl.parse("Tiltfile", (REPO / "Tiltfile").read_text())
    sl.eval(tilt.module(), ast, sl.Globals.standard(), sl.FileLoader(tilt.ext))
    named_in_commands = {
        p
        for cmd in tilt.commands
        for p in re.findall(r"(?<![\w/.-])((?:dev|\.venv)/[\w./-]+)", cmd)
    }
    for path in [*tilt.paths, *(p for p in named_in_commands if not p.startswith(".venv"))]:
        assert (REPO / path).exists(), path
    operator = "dns-operator-controller-manager"  # config/default's name (namePrefix dns-operator-)
    workloads = {d["metadata"]["name"] for d in of_kind(render("dev"), *WORKLOADS)}
    assert set(tilt.resources) == workloads | {operator}
    assert tilt.kustomized == ["manifests/overlays/dev", "dev/operator"]
    assert tilt.images == ["dns-sidecar"]
    assert "dev/operator-source.sh" in tilt.commands
    assert (tilt.deps[operator], tilt.deps["dns-sidecar-cloudflare"]) == (
        ["cert-manager"],
        ["cloudflare-emulator", operator],
    )
    assert "cloudflare:dnsclass" in tilt.objects
    cluster = list(yaml.safe_load_all((REPO / "dev" / "ctlptl.yaml").read_text()))
    assert {doc["kind"] for doc in cluster} == {"Registry", "Cluster"}


def test_dev_runs_the_real_operator_from_its_repository() -> None:
    """dev/operator builds the operator's own config/default (its CRDs from config/crd/bases,
    webhook, cert-manager Issuer) from the clone dev/operator-source.sh makes, with the image
    its release workflow publishes; nothing of the operator is copied here."""
    spec = yaml.safe_load((REPO / "dev" / "operator" / "kustomization.yaml").read_text())
    (resource,) = spec["resources"]
    clone = (REPO / "dev" / "operator" / resource).resolve()
    script = (REPO / "dev" / "operator-source.sh").read_text()
    assert clone == REPO / ".dev" / "homelab-dns-operator" / "config" / "default"
    assert "target=.dev/homelab-dns-operator" in script
    assert "https://github.com/morten-olsen/homelab-dns-operator" in script
    assert spec["images"] == [
        {
            "name": "controller",
            "newName": "ghcr.io/morten-olsen/homelab-dns-operator",
            "newTag": "main",
        }
    ]
    assert ".dev/" in (REPO / ".gitignore").read_text().splitlines()


@pytest.mark.skipif(
    not (REPO / ".dev" / "homelab-dns-operator" / "config" / "default").is_dir(),
    reason="no clone of the operator in .dev/ (dev/operator-source.sh makes one; needs network)",
)
def test_dev_operator_renders_what_the_tiltfile_names() -> None:
    """With the clone present, dev/operator renders the operator's Deployment, CRDs, webhooks
    and the Issuer/Certificates the Tiltfile groups with it, in the namespace and with the pod
    label manifests/operator/operator.yaml names."""
    docs = kustomize(REPO / "dev" / "operator")
    tilt = _Tilt()
    sl.eval(
        tilt.module(),
        sl.parse("Tiltfile", (REPO / "Tiltfile").read_text()),
        sl.Globals.standard(),
        sl.FileLoader(tilt.ext),
    )
    present = {f"{d['metadata']['name']}:{d['kind'].lower()}" for d in docs}
    assert {o for o in tilt.objects if o != "cloudflare:dnsclass"} <= present
    deployment = named(docs, "Deployment", "dns-operator-controller-manager")
    assert deployment["metadata"]["namespace"] == OPERATOR["namespace"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == OPERATOR["podName"]
    crds = {d["metadata"]["name"] for d in of_kind(docs, "CustomResourceDefinition")}
    assert crds == {
        "dnsclasses.dns.homelab.mortenolsen.pro",
        "dnsrecords.dns.homelab.mortenolsen.pro",
    }
    assert of_kind(docs, "ValidatingWebhookConfiguration")


# SPEC section 9: the sweeps over the operator's DNSRecords export these (docs/dnsrecords.md)
SWEEP_METRICS = {
    "dns_sidecar_orphaned_record_sets",
    "dns_sidecar_drifted_records",
    "dns_sidecar_record_conflicts",
}


def _exported_metrics() -> set[str]:
    """Every sample name the sidecar's registry can expose (counters with _total)."""
    metrics = Metrics()
    CoordinationMetrics(metrics.registry)
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_suggested_alerts_name_metrics_the_sidecar_exports() -> None:
    """standalone-monitored ships a PrometheusRule; every dns_sidecar_* metric its alerts use
    is one the sidecar exports (or one of SPEC section 9's sweep gauges), and each alert the
    docs promise is there: unhealthy accounts, Redis down, reload failures, orphans and drift."""
    (rule,) = of_kind(render("standalone-monitored"), "PrometheusRule")
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    used = {m for r in rules for m in re.findall(r"dns_sidecar_[a-z_]+", r["expr"])}
    assert used - _exported_metrics() - SWEEP_METRICS == set()
    assert used >= SWEEP_METRICS
    assert {
        "DnsSidecarAccountUnhealthy",
        "DnsSidecarRedisDown",
        "DnsSidecarReloadFailed",
        "DnsSidecarOrphanedRecords",
        "DnsSidecarDrift",
        "DnsSidecarRecordConflicts",
    } <= {r["alert"] for r in rules}
    assert all(r["labels"]["severity"] in ("critical", "warning", "info") for r in rules)


CRD_TYPES = ["A", "AAAA", "CNAME", "TXT", "MX", "SRV", "NS"]  # the operator's DNSRecord enum


def test_sample_dnsrecords_cover_every_type_as_the_webhook_admits_them() -> None:
    """dev/samples holds one DNSRecord per type of the operator's CRD, for the dev DNSClass, in
    a zone the dev table routes to the emulator; MX and SRV as bare hosts with spec.metadata
    (priority; weight and port) as the webhook demands; every value valid for the sidecar."""
    samples = list(yaml.safe_load_all((REPO / "dev" / "samples" / "dnsrecords.yaml").read_text()))
    docs = render("dev")
    classes = {d["metadata"]["name"] for d in of_kind(docs, "DNSClass")}
    ((_, table),) = _routing_tables(docs)
    zones = {z.name for z in table.zones}
    assert sorted(s["spec"]["type"] for s in samples) == sorted(CRD_TYPES)
    for sample in samples:
        spec = sample["spec"]
        assert sample["apiVersion"] == "dns.homelab.mortenolsen.pro/v1alpha1"
        assert set(spec) <= {
            "type", "domain", "subdomain", "values", "ttl", "dnsClassRef", "metadata",
        }  # fmt: skip
        assert (spec["dnsClassRef"]["name"] in classes, spec["domain"] in zones) == (True, True)
        meta = spec.get("metadata", {})
        if spec["type"] == "MX":
            assert set(meta) == {"priority"}
            values = [f"{meta['priority']} {v}" for v in spec["values"]]
        elif spec["type"] == "SRV":
            assert set(meta) == {"priority", "weight", "port"}
            values = [
                f"{meta['priority']} {meta['weight']} {meta['port']} {v}" for v in spec["values"]
            ]
        else:
            assert meta == {}
            values = spec["values"]
        if spec["type"] in ("MX", "SRV"):
            assert all(" " not in v for v in spec["values"])  # the webhook wants a bare host
        assert canonical_values(spec["type"], values)


def test_dockerfile_passes_hadolint_and_runs_as_non_root() -> None:
    """hadolint finds nothing; the image runs as a numeric user with `dns-sidecar serve`."""
    dockerfile = (REPO / "Dockerfile").read_text()
    result = subprocess.run(
        [tool("hadolint"), str(REPO / "Dockerfile")],
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
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    for copied in ("pyproject.toml", "constraints.txt", "README.md", "LICENSE", "sidecar/"):
        assert f"!{copied}" in ignored


def test_image_carries_oci_labels_fed_by_make_image() -> None:
    """The image is labelled with its source, version and licence; `make image` tags it with the
    version from pyproject.toml and passes that version in (dry run: no container engine here)."""
    labels = dict(
        re.findall(
            r'(org\.opencontainers\.image\.[a-z]+)="([^"]*)"', (REPO / "Dockerfile").read_text()
        )
    )
    assert labels == {
        "org.opencontainers.image.title": "dns-sidecar",
        "org.opencontainers.image.description": (
            "DNS provider backend for the Kubernetes DNS operator"
        ),
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.version": "${VERSION}",
        "org.opencontainers.image.source": "${SOURCE}",
        "org.opencontainers.image.revision": "${REVISION}",
    }
    dry_run = subprocess.run(
        [tool("make"), "--no-print-directory", "-n", "image", f"PYTHON={sys.executable}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert dry_run.split()[:2] == ["docker", "build"]
    assert f"--build-arg VERSION={VERSION}" in dry_run
    assert f"--tag dns-sidecar:{VERSION} ." in dry_run
    pushed = subprocess.run(
        [tool("make"), "--no-print-directory", "-n", "image", f"PYTHON={sys.executable}",
         "IMAGE=registry.example/dns-sidecar:1.0", "CONTAINER_ENGINE=podman"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout  # fmt: skip
    assert pushed.split()[:2] == ["podman", "build"]
    assert "--tag registry.example/dns-sidecar:1.0 ." in pushed


def _pair_mount(container: dict[str, Any], pod: dict[str, Any], path: str) -> dict[str, Any]:
    """The volume whose directory mount holds ``path``."""
    (mount,) = (m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    assert "subPath" not in mount  # a subPath mount never sees a renewal
    (volume,) = (v for v in pod["volumes"] if v["name"] == mount["name"])
    return volume


def test_the_tls_component_serves_https_with_a_renewing_certificate() -> None:
    """standalone-https: the sidecar's Certificate names the Service the DNSClass calls over
    https://, comes from the self-signed CA chain, and is mounted as a directory where the two
    variables point; the operator's namespace gets a Secret carrying the same CA."""
    docs = render("standalone-https")
    (deployment,) = of_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = sidecar_containers(docs)
    env = _env(container)
    cert_file, key_file = env["DNS_SIDECAR_TLS_CERT_FILE"], env["DNS_SIDECAR_TLS_KEY_FILE"]
    volume = _pair_mount(container, pod, cert_file)
    assert _pair_mount(container, pod, key_file) == volume
    serving = named(docs, "Certificate", "dns-sidecar-cloudflare-tls")
    assert volume["secret"]["secretName"] == serving["spec"]["secretName"]
    assert serving["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    server = named(docs, "DNSClass", "cloudflare")["spec"]["server"]
    assert server == "https://dns-sidecar-cloudflare.dns-system.svc:7100"
    assert server.removeprefix("https://").split(":")[0] in serving["spec"]["dnsNames"]
    assert serving["spec"]["privateKey"]["rotationPolicy"] == "Always"
    # the chain: self-signed issuer -> CA certificate -> CA issuer -> the serving certificate
    ca_issuer = named(docs, "ClusterIssuer", serving["spec"]["issuerRef"]["name"])
    ca = next(
        c
        for c in of_kind(docs, "Certificate")
        if c["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"]
    )
    assert ca["spec"]["isCA"] is True
    assert named(docs, "ClusterIssuer", ca["spec"]["issuerRef"]["name"])["spec"] == {
        "selfSigned": {}
    }
    bundle = named(docs, "Certificate", "dns-sidecar-ca-bundle")
    assert bundle["metadata"]["namespace"] == OPERATOR["namespace"]
    assert bundle["spec"]["issuerRef"] == serving["spec"]["issuerRef"]
    # management stays plain HTTP: the kubelet's probes are httpGet on it
    assert container["readinessProbe"]["httpGet"].get("scheme", "HTTP") == "HTTP"


def test_the_tls_component_patches_the_operator_to_trust_the_ca(tmp_path: Path) -> None:
    """With the operator's own Deployment (its Helm chart) in the build, the component mounts
    the CA bundle into the operator's pod and sets SSL_CERT_FILE, and changes nothing else."""
    (tmp_path / "operator.yaml").write_text((DATA / "operator-helm.yaml").read_text())
    spec = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [
            "operator.yaml",
            os.path.relpath(MANIFESTS / "overlays/standalone", tmp_path),
        ],
        "components": [os.path.relpath(MANIFESTS / "components/tls", tmp_path)],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    docs = kustomize(tmp_path)
    name = "dns-operator-controller-manager"
    (before,) = (
        d
        for d in yaml.safe_load_all((DATA / "operator-helm.yaml").read_text())
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == name
    )
    after = named(docs, "Deployment", name)
    for version in SCHEMA_VERSIONS:
        kubernetes_validate.validate(after, version, strict=True)
    pod = after["spec"]["template"]["spec"]
    (manager,) = (c for c in pod["containers"] if c["name"] == "manager")
    volume = _pair_mount(manager, pod, _env(manager)["SSL_CERT_FILE"])
    bundle = named(docs, "Certificate", "dns-sidecar-ca-bundle")
    assert volume["secret"] == {
        "secretName": bundle["spec"]["secretName"],
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert bundle["metadata"]["namespace"] == after["metadata"]["namespace"]
    # take the additions away again: what is left is the chart's Deployment as it was
    manager["env"] = [e for e in manager["env"] if e["name"] != "SSL_CERT_FILE"]
    manager["volumeMounts"] = [m for m in manager["volumeMounts"] if m["name"] != volume["name"]]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != volume["name"]]
    for key in ("env", "volumeMounts"):
        if not manager[key]:
            del manager[key]
    if not pod["volumes"]:
        del pod["volumes"]
    assert after == before


def test_split_horizon_serves_one_zone_from_two_providers() -> None:
    """split-horizon: example.com twice, for disjoint clients (Cloudflare for DNSClass
    cloudflare, a home DNS server by RFC 2136 for DNSClass internal), the TSIG secret read from a
    Secret the docs create (docs/deploy.md) and the Role grants."""
    docs = render("split-horizon")
    ((_, table),) = _routing_tables(docs)
    assert [(z.name, z.account, z.clients) for z in table.zones] == [
        ("example.com", "cloudflare", ["cloudflare"]),
        ("example.com", "home-dns", ["internal"]),
    ]
    (home,) = [a for a in table.accounts if a.provider == "rfc2136"]
    (secret,) = home.credentials
    assert isinstance(secret, FromSecret)
    assert (secret.secret_ref.name, secret.secret_ref.key) == ("home-dns-tsig", "secret")
    role = named(docs, "Role", "dns-sidecar-cloudflare")
    assert "home-dns-tsig" in role["rules"][0]["resourceNames"]
    assert sorted(c["metadata"]["name"] for c in of_kind(docs, "DNSClass")) == [
        "cloudflare",
        "internal",
    ]
