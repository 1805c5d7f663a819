#!/usr/bin/env python3
"""Offline validation of gatehouse's Kubernetes manifests.

Renders every kustomization given on the command line with `kubectl
kustomize` (or reads plain YAML files), then checks each resource. In a
directory without a kustomization, a YAML file none of whose documents has
an apiVersion or kind (a proxy's own config, such as Traefik's file-provider
dynamic.yaml) is reported as skipped; a file named on the command line is
always checked.

* built-in kinds against the Kubernetes OpenAPI schema for the target
  version, strictly (unknown fields are errors), via `kubernetes-validate`;
* custom resources (Istio, Gateway API, Envoy Gateway, Traefik), whose
  schemas are not bundled, for shape only: apiVersion, kind, metadata.name
  and a mapping `spec`; they are listed as "shape-checked" in the output;
* gatehouse's own workload against the hardening the product promises
  (non-root, read-only root filesystem, no capabilities, resources, probes,
  a termination grace period that covers the drain).

Exits 1 on the first category of failure found, after printing them all.
It does not talk to a cluster.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any

import yaml

try:
    import kubernetes_validate
    from kubernetes_validate import utils as kv_utils
except ImportError:  # pragma: no cover - reported to the operator
    sys.exit("kubernetes-validate is not installed (pip install kubernetes-validate)")

# API groups whose schemas are not in kubernetes-validate's bundle.
CRD_GROUPS = (
    "networking.istio.io",
    "security.istio.io",
    "telemetry.istio.io",
    "install.istio.io",
    "gateway.networking.k8s.io",
    "gateway.envoyproxy.io",
    "traefik.io",
    "traefik.containo.us",
    "monitoring.coreos.com",
)

# gatehouse's shutdown_delay + shutdown_grace defaults, in seconds.
DRAIN_SECONDS = 5 + 20


def render(path: str) -> list[dict[str, Any]]:
    """Resources of one kustomization directory or one YAML file."""
    if os.path.isdir(path):
        if not any(
            os.path.exists(os.path.join(path, name))
            for name in ("kustomization.yaml", "kustomization.yml", "Kustomization")
        ):
            docs: list[dict[str, Any]] = []
            for name in sorted(os.listdir(path)):
                if name.endswith((".yaml", ".yml")):
                    file = os.path.join(path, name)
                    found = render(file)
                    if found and not any("apiVersion" in d or "kind" in d for d in found):
                        # e.g. a Traefik file-provider dynamic.yaml next to
                        # the CRD examples: parsed, but not a resource.
                        print(f"skip {file}: no apiVersion or kind (not a Kubernetes manifest)")
                        continue
                    docs.extend(found)
            return docs
        out = subprocess.run(
            ["kubectl", "kustomize", path],
            check=False,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise ValueError(f"kubectl kustomize {path} failed:\n{out.stderr.strip()}")
        text = out.stdout
    else:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    for doc in docs:
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: a YAML document is not a mapping")
    return docs


def name_of(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind', '?')}/{meta.get('name', '?')}"


def is_crd(doc: dict[str, Any]) -> bool:
    api = str(doc.get("apiVersion", ""))
    group = api.split("/", 1)[0] if "/" in api else ""
    return any(group == g or group.endswith("." + g) for g in CRD_GROUPS)


def shape_errors(doc: dict[str, Any]) -> list[str]:
    errors = []
    if not isinstance(doc.get("apiVersion"), str) or not doc["apiVersion"]:
        errors.append("apiVersion is missing")
    if not isinstance(doc.get("kind"), str) or not doc["kind"]:
        errors.append("kind is missing")
    meta = doc.get("metadata")
    # An IstioOperator is istioctl's input, not an object stored in the
    # cluster: istioctl accepts it without a name.
    name_optional = doc.get("kind") == "IstioOperator"
    if not name_optional and (not isinstance(meta, dict) or not isinstance(meta.get("name"), str)):
        errors.append("metadata.name is missing")
    if "spec" in doc and not isinstance(doc["spec"], dict):
        errors.append("spec must be a mapping")
    return errors


def hardening_errors(doc: dict[str, Any]) -> list[str]:
    """What gatehouse's own Deployment must keep to run safely."""
    if doc.get("kind") != "Deployment" or (doc.get("metadata") or {}).get("name") != "gatehouse":
        return []
    errors = []
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    if doc.get("spec", {}).get("replicas", 1) < 2:
        errors.append("replicas must be at least 2")
    if pod.get("automountServiceAccountToken") is not False:
        errors.append("automountServiceAccountToken must be false")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= DRAIN_SECONDS:
        errors.append(
            f"terminationGracePeriodSeconds {grace} must exceed shutdown_delay + shutdown_grace ({DRAIN_SECONDS})"
        )
    if not pod.get("topologySpreadConstraints"):
        errors.append("topologySpreadConstraints missing")
    pod_sc = pod.get("securityContext") or {}
    for container in pod.get("containers", []):
        where = f"container {container.get('name')}"
        sc = container.get("securityContext") or {}
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            errors.append(f"{where}: runAsNonRoot must be true")
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{where}: readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{where}: allowPrivilegeEscalation must be false")
        if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
            errors.append(f"{where}: capabilities.drop must include ALL")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            errors.append(f"{where}: seccompProfile must be RuntimeDefault")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for res in ("cpu", "memory"):
                if res not in (resources.get(kind) or {}):
                    errors.append(f"{where}: resources.{kind}.{res} missing")
        for probe, path in (
            ("readinessProbe", "/readyz"),
            ("livenessProbe", "/healthz"),
            ("startupProbe", None),
        ):
            got = ((container.get(probe) or {}).get("httpGet") or {}).get("path")
            if got is None or (path is not None and got != path):
                errors.append(f"{where}: {probe} must GET {path or 'a health path'}")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="kustomization directories or YAML files")
    parser.add_argument("-k", "--kubernetes-version", default="1.30.0")
    args = parser.parse_args()

    failures = 0
    for path in args.paths:
        try:
            docs = render(path)
        except (ValueError, yaml.YAMLError) as err:
            print(f"FAIL {path}: {err}")
            failures += 1
            continue
        if not docs:
            print(f"FAIL {path}: no resources")
            failures += 1
            continue
        for doc in docs:
            label = f"{path}: {name_of(doc)}"
            errors = shape_errors(doc)
            if not errors and is_crd(doc):
                print(f"ok   {label} (custom resource: shape-checked, no bundled schema)")
                continue
            if not errors:
                try:
                    kubernetes_validate.validate(doc, args.kubernetes_version, strict=True)
                except kv_utils.SchemaNotFoundError:
                    errors.append(f"no schema for {doc.get('apiVersion')} {doc.get('kind')}")
                except kv_utils.ValidationError as err:
                    where = ".".join(str(p) for p in err.path) or "(root)"
                    errors.append(f"{where}: {err.message}")
            if not errors:
                errors.extend(hardening_errors(doc))
            if errors:
                failures += 1
                for error in errors:
                    print(f"FAIL {label}: {error}")
            else:
                print(f"ok   {label}")
    print(f"manifests: {failures} failing resource(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
