"""deploy/k8s rendered by kustomize (kubectl's built-in) and validated offline: Kubernetes JSON schemas from
kubernetes-validate (strict: unknown fields fail), a vendored KEDA CRD subset, and cross-checks against the code
(settings keys, CLI commands, health port and paths) and between the manifests (topics, lag scaler, secrets,
network policies)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.common import (
    DEPLOY,
    K8S,
    K8S_VERSION,
    KEDA_SCHEMAS,
    SETTINGS_FILE_VARIABLE,
    check_radlabel_args,
    kustomize,
    load_settings_like_the_image,
    load_yaml_docs,
)

TREES = {"base": K8S / "base", "vllm": K8S / "overlays" / "vllm", "rules-only": K8S / "overlays" / "rules-only"}
SECRET_EXAMPLES = load_yaml_docs(K8S / "base" / "secret.example.yaml")


@pytest.fixture(scope="module", params=sorted(TREES))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize(TREES[request.param])


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def validate(doc: dict[str, Any]) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        version = doc["apiVersion"].split("/")[1]
        schema = json.loads((KEDA_SCHEMAS / f"{doc['kind'].lower()}-keda-{version}.json").read_text())
        jsonschema.validate(doc, schema)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_manifest_validates_against_its_schema(rendered: tuple[str, list[dict]]) -> None:
    name, docs = rendered
    assert len(docs) >= 15, name
    for doc in [*docs, *SECRET_EXAMPLES]:
        try:
            validate(doc)
        except Exception as exc:  # name the resource
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {getattr(exc, 'message', exc)}")


def test_validators_reject_a_misspelt_field() -> None:
    deployment = yaml.safe_load((K8S / "base" / "connector.yaml").read_text().split("\n---\n")[0])
    probe = {"httpGet": {"path": "/readyz", "port": "http"}}
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = probe  # typo: silently no probe
    kubernetes_validate.validate({**deployment, "metadata": deployment["metadata"]}, K8S_VERSION, strict=False)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    scaled = load_yaml_docs(K8S / "base" / "connector-scaledobject.yaml")[0]
    scaled["spec"]["maxReplicas"] = 3  # KEDA's field is maxReplicaCount; the API server would drop this silently
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


def containers(docs: list[dict]) -> list[tuple[str, dict, dict]]:
    out = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            out += [(doc["metadata"]["name"], pod, c) for c in pod["containers"]]
    return out


def radlabel_containers(docs: list[dict]) -> list[tuple[str, dict, dict]]:
    return [(n, p, c) for n, p, c in containers(docs) if c["image"].split(":")[0].endswith("radlabel")]


def env_of(docs: list[dict], container: dict) -> dict[str, str]:
    maps = by_kind(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]]["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def test_radlabel_commands_exist_in_the_cli(rendered: tuple[str, list[dict]]) -> None:
    # `mllp` fails until the MLLP gateway branch is merged (its command is built elsewhere).
    name, docs = rendered
    for deployment, _, container in radlabel_containers(docs):
        check_radlabel_args(container["args"], f"{name}: {deployment}/{container['name']}")


def test_containers_are_hardened_and_sized(rendered: tuple[str, list[dict]]) -> None:
    name, docs = rendered
    for deployment, pod, container in containers(docs):
        requests = container["resources"]["requests"]
        assert {"cpu", "memory"} <= set(requests) and "memory" in container["resources"]["limits"], deployment
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    for deployment, pod, container in radlabel_containers(docs):
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), "read-only root needs /tmp"


def test_settings_load_from_configmaps_and_the_example_secret(rendered: tuple[str, list[dict]], tmp_path: Path) -> None:
    name, docs = rendered
    secret = next(s for s in SECRET_EXAMPLES if s["metadata"]["name"] == "radlabel-secrets")
    (tmp_path / "settings.yaml").write_text(secret["stringData"]["settings.yaml"], encoding="utf-8")
    for deployment, pod, container in radlabel_containers(docs):
        env = env_of(docs, container)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        config_dir = str(Path(env[SETTINGS_FILE_VARIABLE]).parent)
        assert config_dir in mounts, f"{deployment}: the settings file's directory is not mounted"
        env[SETTINGS_FILE_VARIABLE] = str(tmp_path / "settings.yaml")
        env["RADLABEL_KAFKA__SSL_CAFILE"] = ""  # the CA file exists only in the pod
        loaded = load_settings_like_the_image(env)
        assert loaded["kafka"]["security_protocol"] == "SASL_SSL"
        if container["args"][0] == "run":
            expected = "RuleLabeler" if name == "rules-only" else "OpenAILabeler"
            assert loaded["labeler_class"] == expected, name
        if container["args"][0] == "sink":
            assert loaded["sink"]["fhir_url"].startswith("https://"), "the hospital's server: TLS"
            assert loaded["sink"]["profile"] == "enrich" == (loaded["fhir"]["profile"] or "enrich")
            assert loaded["sink"]["auth"]["kind"] == "none"  # the example secret leaves sink.auth commented


def test_probes_hit_the_health_port_and_paths_the_code_serves(rendered: tuple[str, list[dict]]) -> None:
    name, docs = rendered
    for deployment, _, container in radlabel_containers(docs):
        env = env_of(docs, container)
        args = container["args"]
        port = int(args[args.index("--http-port") + 1]) if "--http-port" in args else int(env["RADLABEL_HTTP_PORT"])
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{deployment}/{container['name']} {probe}"
            assert named.get(get["port"], get["port"]) == port, f"{deployment}/{container['name']} {probe} port"


async def test_health_server_answers_the_probe_paths() -> None:
    from prometheus_client import CollectorRegistry

    from connector.stream.http import HealthServer

    async def ok() -> tuple[bool, str]:
        return True, "ok"

    async def not_ready() -> tuple[bool, str]:
        return False, "paused: labeler unavailable"

    server = HealthServer(CollectorRegistry(), ok, not_ready, host="127.0.0.1", port=0)
    await server.start()
    try:
        statuses = {}
        for path in ("/healthz", "/readyz", "/health"):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            statuses[path] = (await reader.read()).split(b" ", 2)[1]
            writer.close()
        assert statuses == {"/healthz": b"200", "/readyz": b"503", "/health": b"404"}
    finally:
        await server.stop()


def test_keda_scales_the_connector_on_the_lag_of_its_own_group_and_topic(rendered: tuple[str, list[dict]]) -> None:
    name, docs = rendered
    params = json.loads((KEDA_SCHEMAS / "kafka-scaler-params.json").read_text())
    scaled = by_kind(docs, "ScaledObject")["radlabel-connector"]
    deployments = by_kind(docs, "Deployment")
    assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
    target = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
    assert "replicas" not in target["spec"], "replicas belong to the autoscaler"
    connector = next(c for c in target["spec"]["template"]["spec"]["containers"] if c["args"][0] == "run")
    env = env_of(docs, connector)
    [trigger] = scaled["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka" and set(meta) <= set(params["triggerMetadata"]), set(meta)
    for key, value in meta.items():
        allowed = params["triggerMetadata"][key].get("enum")
        assert allowed is None or value in allowed, (key, value)
    assert meta["topic"] == env["RADLABEL_KAFKA__INPUT_TOPIC"]
    assert meta["consumerGroup"] == env["RADLABEL_KAFKA__GROUP_ID"]
    assert meta["bootstrapServers"] == env["RADLABEL_KAFKA__BOOTSTRAP_SERVERS"]
    assert meta["offsetResetPolicy"] == "earliest"  # as the connector's consumer (auto_offset_reset)
    job = by_kind(docs, "Job")["radlabel-topics"]["spec"]["template"]["spec"]["containers"][0]
    job_env = {e["name"]: e["value"] for e in job["env"]}
    assert job_env["INPUT_TOPIC"] == env["RADLABEL_KAFKA__INPUT_TOPIC"]
    assert job_env["OUTPUT_TOPIC"] == env["RADLABEL_KAFKA__OUTPUT_TOPIC"]
    assert job_env["DEAD_LETTER_TOPIC"] == env["RADLABEL_KAFKA__DEAD_LETTER_TOPIC"]
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"] <= int(job_env["INPUT_PARTITIONS"])
    auth = by_kind(docs, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    keda_secret = {s["metadata"]["name"]: s for s in SECRET_EXAMPLES}
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["parameter"] in params["authParams"]
        assert ref["key"] in keda_secret[ref["name"]]["stringData"]
    sasl = keda_secret["radlabel-keda-kafka"]["stringData"]["sasl"]
    assert sasl in params["authParams"]["sasl"]["enum"]
    assert sasl == env["RADLABEL_KAFKA__SASL_MECHANISM"].lower().replace("-", "_").replace("scram_sha_", "scram_sha")


def test_sink_reads_the_output_topic_and_dead_letters_to_a_topic_the_job_creates(
        rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    deployment = by_kind(docs, "Deployment")["radlabel-sink"]
    [sink] = deployment["spec"]["template"]["spec"]["containers"]
    assert sink["args"][0] == "sink"
    env = env_of(docs, sink)
    job = by_kind(docs, "Job")["radlabel-topics"]["spec"]["template"]["spec"]["containers"][0]
    job_env = {e["name"]: e["value"] for e in job["env"]}
    assert env.get("RADLABEL_SINK__TOPIC", env["RADLABEL_KAFKA__OUTPUT_TOPIC"]) == job_env["OUTPUT_TOPIC"]
    assert env["RADLABEL_SINK__DEAD_LETTER_TOPIC"] == job_env["SINK_DEAD_LETTER_TOPIC"]
    assert job_env["SINK_DEAD_LETTER_TOPIC"] not in (job_env["DEAD_LETTER_TOPIC"], job_env["OUTPUT_TOPIC"])
    connector = by_kind(docs, "ConfigMap")["radlabel-connector"]["data"]
    assert env["RADLABEL_SINK__GROUP_ID"] != connector["RADLABEL_KAFKA__GROUP_ID"]  # its own offsets
    assert 1 <= deployment["spec"]["replicas"] <= int(job_env["OUTPUT_PARTITIONS"])  # more would sit idle
    assert not any(name.startswith("RADLABEL_SINK__AUTH") for name in env), "credentials belong in the Secret"


def test_every_referenced_secret_and_configmap_key_exists(rendered: tuple[str, list[dict]]) -> None:
    name, docs = rendered
    secrets = {s["metadata"]["name"]: set(s["stringData"]) for s in SECRET_EXAMPLES}
    maps = by_kind(docs, "ConfigMap")
    for deployment, pod, container in containers(docs):
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                keys = secrets[volume["secret"]["secretName"]]
                assert {i["key"] for i in volume["secret"].get("items", [])} <= keys, deployment
            if "configMap" in volume:
                assert volume["configMap"]["name"] in maps, deployment
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]], (deployment, ref)
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in maps


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_network_policies_model_server_only_from_the_connector_sink_only_to_kafka_and_fhir(rendered: tuple[str, list[dict]]) -> None:
    name, docs = rendered
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in by_kind(docs, "Deployment").values()}
    for deployment, labels in pods.items():
        assert any(_selects(p["spec"]["podSelector"], labels) and p["spec"]["podSelector"] for p in policies.values()), \
            f"{deployment} has no policy of its own"
    # The sink reaches Kafka and the FHIR server's port (the one in sink.fhir_url), nothing in the namespace.
    sink_env = env_of(docs, by_kind(docs, "Deployment")["radlabel-sink"]["spec"]["template"]["spec"]["containers"][0])
    fhir_url = httpx.URL(sink_env["RADLABEL_SINK__FHIR_URL"])
    fhir_port = fhir_url.port or {"https": 443, "http": 80}[fhir_url.scheme]
    sink_egress = [rule for p in policies.values() if _selects(p["spec"]["podSelector"], pods["radlabel-sink"])
                   for rule in p["spec"].get("egress", []) if rule.get("to")]
    ip_rules = [rule for rule in sink_egress if any("ipBlock" in peer for peer in rule["to"])]
    assert ip_rules and all({"protocol": "TCP", "port": fhir_port} in rule["ports"] for rule in ip_rules), ip_rules
    assert any(peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "kafka"
               for rule in sink_egress for peer in rule["to"])
    assert not any("podSelector" in peer and "namespaceSelector" not in peer
                   for rule in sink_egress for peer in rule["to"]), "the sink needs no pod in the namespace"
    if "model-server" not in pods:
        assert name == "rules-only"
        return
    admitting = [p for p in policies.values()
                 if _selects(p["spec"]["podSelector"], pods["model-server"]) and p["spec"].get("ingress")]
    sources = [peer for p in admitting for rule in p["spec"]["ingress"] for peer in rule["from"]]
    assert sources and all(set(peer) == {"podSelector"} and _selects(peer["podSelector"], pods["radlabel-connector"])
                           and not _selects(peer["podSelector"], pods["radlabel-mllp"])
                           and not _selects(peer["podSelector"], pods["radlabel-sink"]) for peer in sources), sources
    assert all(not rule.get("to") for p in admitting for rule in p["spec"].get("egress", [])), "model server egress"


def test_pod_disruption_budgets_select_running_pods(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind(docs, "Deployment").values()]
    budgets = by_kind(docs, "PodDisruptionBudget")
    assert {"radlabel-connector", "radlabel-mllp", "radlabel-sink"} <= set(budgets)
    for budget in budgets.values():
        assert any(_selects(budget["spec"]["selector"], labels) for labels in pods), budget["metadata"]["name"]


def test_model_server_flags_match_the_compose_model_servers(rendered: tuple[str, list[dict]]) -> None:
    name, docs = rendered
    if name == "rules-only":
        assert "model-server" not in by_kind(docs, "Deployment")
        return
    server = by_kind(docs, "Deployment")["model-server"]["spec"]["template"]["spec"]["containers"][0]
    source = DEPLOY / ("vllm" if name == "vllm" else "tgi") / "docker-compose.yml"
    compose = yaml.safe_load(source.read_text())["services"]["vllm" if name == "vllm" else "tgi"]
    assert server["args"] == compose["command"] and server["image"] == compose["image"]
    assert any(r["name"] == "nvidia.com/gpu" for r in [{"name": k} for k in server["resources"]["limits"]])
    pod = by_kind(docs, "Deployment")["model-server"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    key_env = "VLLM_API_KEY" if name == "vllm" else "API_KEY"
    assert any(e["name"] == key_env and "secretKeyRef" in e.get("valueFrom", {}) for e in server["env"])
    connector_env = by_kind(docs, "ConfigMap")["radlabel-connector"]["data"]
    assert connector_env["RADLABEL_LABELER__RESPONSE_FORMAT"] == ("openai" if name == "vllm" else "tgi")
    service = by_kind(docs, "Service")["model-server"]
    assert connector_env["RADLABEL_LABELER__ENDPOINT"].startswith(
        f"http://model-server.radlabel.svc:{service['spec']['ports'][0]['port']}/")
