"""deploy/k8s/jobs/model-check: the replay-based model-upgrade check as a Kubernetes Job, rendered by kustomize and
validated offline like base (tests/deploy/test_k8s.py), plus what the Job claims about the code and about base:
every step is a real radlabel command with real options, the steps hand each other the files they read, the window
and endpoint variables are defined where they are expanded, the settings it loads include audit.salt, and the
network policies let it reach only Kafka and the candidate model server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.common import K8S, K8S_VERSION, check_radlabel_args, kustomize, load_settings_like_the_image, \
    load_yaml_docs
from tests.deploy.test_k8s import SECRET_EXAMPLES, by_kind, env_of

JOB_TREE = K8S / "jobs" / "model-check"


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return kustomize(JOB_TREE)


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize(K8S / "base")


def pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return by_kind(docs, "Job")["radlabel-model-check"]["spec"]["template"]["spec"]


def steps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = pod(docs)
    return [*spec["initContainers"], *spec["containers"]]  # init containers run in order, then the main one


def test_every_manifest_validates_strictly(docs: list[dict[str, Any]]) -> None:
    assert {d["kind"] for d in docs} == {"Job", "PersistentVolumeClaim", "NetworkPolicy"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"]["namespace"] == "radlabel"


def test_steps_are_radlabel_commands_in_the_documented_order(docs: list[dict[str, Any]]) -> None:
    names = [c["name"] for c in steps(docs)]
    assert names == ["replay", "export-live", "export-candidate", "diff", "report"]
    for container in steps(docs):
        check_radlabel_args(container["args"], f"model-check/{container['name']}")
        sec = container["securityContext"]
        assert sec["readOnlyRootFilesystem"] is True and sec["allowPrivilegeEscalation"] is False
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod(docs)["securityContext"]["runAsNonRoot"] is True
    assert pod(docs)["restartPolicy"] == "Never"


def _arg(container: dict[str, Any], flag: str) -> str:
    args = container["args"]
    return args[args.index(flag) + 1]


def test_each_step_reads_what_an_earlier_step_wrote(docs: list[dict[str, Any]]) -> None:
    replay, live, candidate, diff, report = steps(docs)
    assert _arg(replay, "--to-files") == _arg(candidate, "--folder")       # dry run: no topic is written
    assert "--output-topic" not in replay["args"]
    written = {_arg(live, "--out"), _arg(candidate, "--out")}
    assert set(diff["args"][2:4]) == written
    compared = [report["args"][i + 1] for i, a in enumerate(report["args"]) if a == "--compare"]
    assert compared == diff["args"][2:4]
    # The exports and the bundles (PHI: evidence sentences) stay in the pod's emptyDir; only results persist.
    volumes = {v["name"]: v for v in pod(docs)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in replay["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/work"]]
    assert _arg(diff, "--out").startswith("/results/") and _arg(report, "--out").startswith("/results/")
    claim = volumes[mounts["/results"]]["persistentVolumeClaim"]["claimName"]
    assert claim in by_kind(docs, "PersistentVolumeClaim")


def test_expanded_variables_are_defined_and_the_window_is_the_same_on_both_sides(
        docs: list[dict[str, Any]], base: list[dict[str, Any]]) -> None:
    for container in steps(docs):
        env = env_of(base, container)   # the ConfigMaps come from base
        for name in re.findall(r"\$\((\w+)\)", " ".join(container["args"])):
            assert name in env, f"{container['name']}: $({name}) is not defined"
    replay, live = steps(docs)[:2]
    assert (_arg(replay, "--from"), _arg(replay, "--to")) == (_arg(live, "--from"), _arg(live, "--to"))
    assert _arg(replay, "--group") != env_of(base, replay)["RADLABEL_KAFKA__GROUP_ID"]  # never the live group
    assert _arg(live, "--topic") == "$(RADLABEL_KAFKA__OUTPUT_TOPIC)"


def test_settings_load_with_an_audit_salt(docs: list[dict[str, Any]], base: list[dict[str, Any]],
                                          tmp_path: Path) -> None:
    secret = next(s for s in SECRET_EXAMPLES if s["metadata"]["name"] == "radlabel-secrets")
    assert "salt:" in secret["stringData"]["settings.yaml"]  # audit export refuses to run without audit.salt
    (tmp_path / "settings.yaml").write_text(secret["stringData"]["settings.yaml"], encoding="utf-8")
    items = {i["key"] for v in pod(docs)["volumes"] if "secret" in v for i in v["secret"]["items"]}
    assert items <= set(secret["stringData"])
    env = env_of(base, steps(docs)[0])
    env["RADLABEL_CONFIG"] = str(tmp_path / "settings.yaml")
    env["RADLABEL_KAFKA__SSL_CAFILE"] = ""
    assert load_settings_like_the_image(env)["kafka"]["security_protocol"] == "SASL_SSL"


def test_network_policies_reach_only_kafka_and_the_candidate(docs: list[dict[str, Any]],
                                                            base: list[dict[str, Any]]) -> None:
    policies = by_kind(docs, "NetworkPolicy")
    labels = by_kind(docs, "Job")["radlabel-model-check"]["spec"]["template"]["metadata"]["labels"]
    mine = policies["model-check"]["spec"]
    assert all(labels.get(k) == v for k, v in mine["podSelector"]["matchLabels"].items())
    assert "ingress" not in mine  # nothing connects to the check
    targets = [peer for rule in mine["egress"] for peer in rule["to"]]
    candidate = policies["model-server-candidate"]["spec"]["podSelector"]["matchLabels"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}} in targets
    assert {"podSelector": {"matchLabels": candidate}} in targets and len(targets) == 2
    live = by_kind(base, "Deployment")["model-server"]["spec"]["template"]["metadata"]["labels"]
    assert candidate["app.kubernetes.io/component"] != live["app.kubernetes.io/component"], \
        "the check must not open the live model server"
    [rule] = policies["model-server-candidate"]["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": mine["podSelector"]["matchLabels"]}}]


def test_a_step_with_a_wrong_option_is_caught() -> None:
    job = load_yaml_docs(JOB_TREE / "job.yaml")[0]
    diff = job["spec"]["template"]["spec"]["initContainers"][3]
    with pytest.raises(AssertionError, match="no option --output"):
        check_radlabel_args([*diff["args"][:4], "--output", "/results/x"], "diff")
    with pytest.raises(AssertionError, match="not a command"):
        check_radlabel_args(["audit-export", "--out", "x.csv"], "export")
