"""deploy/compose (and deploy/tgi, deploy/vllm) loaded by the real compose binary and checked against the code:
settings keys, CLI commands, topics, model-server flags, secrets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from connector.settings import LabelerSettings
from tests.deploy.common import (
    COMPOSE_DIR,
    DEPLOY,
    K8S,
    REPO,
    SETTINGS_FILE_VARIABLE,
    check_radlabel_args,
    compose_config,
    container_env,
    load_settings_like_the_image,
    radlabel_variables_in_deploy,
    run_python,
    settings_env_names,
)

STACKS = {"tgi": ("compose.yaml",), "vllm": ("compose.yaml", "compose.vllm.yaml")}
RADLABEL_SERVICES = ("connector", "mllp", "sink")


@pytest.fixture(scope="module", params=sorted(STACKS))
def stack(request: pytest.FixtureRequest) -> tuple[str, dict]:
    return request.param, compose_config(*STACKS[request.param])


def test_every_compose_file_loads_with_the_real_compose_loader() -> None:
    compose_config("docker-compose.yml", cwd=DEPLOY / "tgi")
    compose_config("docker-compose.yml", cwd=DEPLOY / "vllm")
    for files in STACKS.values():
        assert compose_config(*files)["services"]


def test_compose_loader_rejects_a_misspelt_key(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: busybox\n    enviroment: {X: 1}\n")
    with pytest.raises(AssertionError, match="enviroment"):
        compose_config("compose.yaml", cwd=tmp_path)


def test_every_radlabel_variable_in_deploy_is_a_settings_key() -> None:
    valid = settings_env_names() | {SETTINGS_FILE_VARIABLE}
    used = radlabel_variables_in_deploy()
    assert len(used) >= 15, sorted(used)  # the scan found the files
    unknown = {name: files for name, files in used.items() if name not in valid}
    assert not unknown, f"not settings keys (connector/settings.py): {unknown}"


def test_settings_file_variable_is_what_the_settings_model_reads(tmp_path: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text("http_port: 9123\nlabeler: {api_key: from-file}\n", encoding="utf-8")
    done = run_python("from connector.settings import load_settings; s = load_settings(); "
                      "print(s.http_port, s.labeler.api_key.get_secret_value())", {SETTINGS_FILE_VARIABLE: str(config)})
    assert done.stdout.split() == ["9123", "from-file"], done.stderr


def test_services_and_radlabel_commands(stack: tuple[str, dict]) -> None:
    name, config = stack
    services = config["services"]
    assert {"kafka", "topics", "connector", "mllp", "sink", "fhir", name} <= set(services), sorted(services)
    for service in RADLABEL_SERVICES:
        spec = services[service]
        assert spec["image"].startswith("radlabel:") and spec["build"]["target"] == "connector"
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]


@pytest.mark.parametrize("service", RADLABEL_SERVICES)
def test_compose_commands_exist_in_the_cli(service: str) -> None:
    # `mllp` fails until the MLLP gateway branch is merged (its command is built elsewhere).
    for files in STACKS.values():
        check_radlabel_args(compose_config(*files)["services"][service]["command"], f"compose {service}")


def test_radlabel_services_load_their_settings_without_the_ml_stack(stack: tuple[str, dict], tmp_path: Path) -> None:
    """Each radlabel container's environment + the example secrets file -> the real settings model and labeler."""
    name, config = stack
    secrets_file = tmp_path / "radlabel-settings.yaml"
    secrets_file.write_text((COMPOSE_DIR / "secrets" / "radlabel-settings.yaml.example").read_text(encoding="utf-8"))
    for service in RADLABEL_SERVICES:
        env = {k: container_env(str(v)) for k, v in config["services"][service]["environment"].items()}
        mounted = {s["target"] for s in config["services"][service]["secrets"]}
        assert env[SETTINGS_FILE_VARIABLE] in mounted, f"{service}: settings file is not a mounted secret"
        env[SETTINGS_FILE_VARIABLE] = str(secrets_file)
        loaded = load_settings_like_the_image(env)
        assert loaded["kafka"]["bootstrap_servers"] == "kafka:9092"
        assert loaded["http_port"] == int(env["RADLABEL_HTTP_PORT"])
        if service == "connector":
            # Env and the YAML file merge: endpoint from the environment, token from the secret file.
            assert loaded["labeler_class"] == "OpenAILabeler"
            assert loaded["api_key"] == "replace-with-the-model-server-token"
            server = "tgi" if name == "tgi" else "vllm"
            assert loaded["labeler"]["endpoint"].startswith(f"http://{server}:")
            assert loaded["labeler"]["response_format"] == ("tgi" if name == "tgi" else "openai")
            assert config["services"]["connector"]["depends_on"][server]["condition"] == "service_healthy"
        if service == "sink":
            # The sink writes into the stack's FHIR server, on the port that server listens on.
            url = httpx.URL(loaded["sink"]["fhir_url"])
            assert url.host == "fhir" and "fhir" in config["services"]["sink"]["depends_on"]
            assert url.port == int(config["services"]["fhir"]["ports"][0]["target"])
            assert config["services"]["fhir"]["image"].startswith("hapiproject/hapi:v")  # pinned, not latest
            assert loaded["sink"]["profile"] == "enrich" == (loaded["fhir"]["profile"] or "enrich")
            assert loaded["sink"]["conditional_references"] == "server"  # HAPI resolves them in transactions
            assert loaded["sink"]["auth"]["kind"] == "none"


def test_topics_job_creates_the_topics_the_processes_use(stack: tuple[str, dict]) -> None:
    _, config = stack
    job = config["services"]["topics"]["environment"]
    env = config["services"]["connector"]["environment"]
    assert job["INPUT_TOPIC"] == env["RADLABEL_KAFKA__INPUT_TOPIC"] == config["services"]["mllp"]["environment"][
        "RADLABEL_KAFKA__INPUT_TOPIC"]
    assert job["OUTPUT_TOPIC"] == env["RADLABEL_KAFKA__OUTPUT_TOPIC"]
    assert job["DEAD_LETTER_TOPIC"] == env["RADLABEL_KAFKA__DEAD_LETTER_TOPIC"]
    # The sink reads the connector's output topic (sink.topic unset) and dead-letters to its own topic.
    sink = config["services"]["sink"]["environment"]
    assert "RADLABEL_SINK__TOPIC" not in sink and sink["RADLABEL_KAFKA__OUTPUT_TOPIC"] == job["OUTPUT_TOPIC"]
    assert job["SINK_DEAD_LETTER_TOPIC"] == sink["RADLABEL_SINK__DEAD_LETTER_TOPIC"] != job["DEAD_LETTER_TOPIC"]
    assert sink["RADLABEL_SINK__GROUP_ID"] != env["RADLABEL_KAFKA__GROUP_ID"]  # its own offsets
    assert config["services"]["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    from connector.settings import KafkaSettings

    assert int(job["DEAD_LETTER_MAX_MESSAGE_BYTES"]) > KafkaSettings().max_record_bytes  # raw input + headers
    assert int(job["INPUT_RETENTION_MS"]) >= 7 * 24 * 3600 * 1000  # the replay window (docs/OPERATIONS.md)
    # one script for both stacks: compose mounts the file kustomize packs into the Job's ConfigMap
    script = K8S / "base" / "init-topics.sh"
    assert config["services"]["topics"]["volumes"][0]["source"] == str(script.resolve())


def test_sink_credentials_never_come_from_the_environment() -> None:
    """sink.auth secrets reach the sink only through the mounted settings file (RADLABEL_CONFIG)."""
    used = radlabel_variables_in_deploy()
    assert "RADLABEL_SINK__FHIR_URL" in used  # the scan sees the sink's variables
    leaked = {name: files for name, files in used.items() if name.startswith("RADLABEL_SINK__AUTH")}
    assert not leaked, f"sink credentials as environment variables: {leaked}"


def test_commented_sink_auth_example_is_valid_settings(tmp_path: Path) -> None:
    """Uncommenting the example's sink block gives settings the real model accepts (keys and auth rules)."""
    example = (COMPOSE_DIR / "secrets" / "radlabel-settings.yaml.example").read_text(encoding="utf-8").splitlines()
    start = example.index("# sink:")
    uncommented = [line for line in example[:start] if not line.startswith("#")]
    uncommented += [line[2:] for line in example[start:] if line.startswith("# ")]
    (tmp_path / "s.yaml").write_text("\n".join(uncommented) + "\n", encoding="utf-8")
    done = run_python("from connector.settings import load_settings; a = load_settings().sink.auth; "
                      "print(a.kind, a.client_id, a.client_secret.get_secret_value())",
                      {SETTINGS_FILE_VARIABLE: str(tmp_path / "s.yaml")})
    assert done.stdout.split() == ["client-credentials", "radlabel-sink", "replace-with-the-client-secret"], \
        done.stderr


def test_init_topics_script_is_valid_sh_and_uses_every_variable() -> None:
    script = K8S / "base" / "init-topics.sh"
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text(encoding="utf-8")
    job = compose_config("compose.yaml")["services"]["topics"]["environment"]
    for variable in job:
        assert "${" + variable in text or "$" + variable in text, f"{variable} is set but the script ignores it"


def _flags(args: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)


def test_model_servers_grammar_telemetry_and_token_budget(stack: tuple[str, dict]) -> None:
    name, config = stack
    max_new = LabelerSettings().max_new_tokens
    server = config["services"][name]
    entry = " ".join(server["entrypoint"])
    assert "/run/secrets/model-api-key" in entry and "model-api-key" in {s["source"] for s in server["secrets"]}
    assert not server.get("ports"), "the model server is reachable on the compose network only"
    flags = _flags(server["command"])
    if name == "tgi":
        assert flags["usage-stats"] == "off"
        assert "--disable-grammar-support" not in server["command"]
        assert int(flags["max-total-tokens"]) - int(flags["max-input-tokens"]) >= max_new
        assert "API_KEY=" in entry and "text-generation-launcher" in entry
    else:
        assert server["environment"]["VLLM_NO_USAGE_STATS"] == "1"
        assert int(flags["max-model-len"]) > max_new and "--disable-log-requests" in server["command"]
        assert "VLLM_API_KEY=" in entry and "api-key" not in flags  # token never on the command line
    assert server["environment"]["HF_HUB_OFFLINE"] == "1"


def test_secret_files_are_git_ignored_and_examples_are_not() -> None:
    secrets = COMPOSE_DIR / "secrets"
    for real in ("model-api-key", "radlabel-settings.yaml"):
        assert subprocess.run(["git", "check-ignore", "-q", str(secrets / real)], cwd=REPO).returncode == 0
    for kept in ("radlabel-settings.yaml.example", "make-secrets.sh"):
        assert subprocess.run(["git", "check-ignore", "-q", str(secrets / kept)], cwd=REPO).returncode == 1
    assert subprocess.run(["git", "check-ignore", "-q", str(DEPLOY / "vllm" / "model-api-key")], cwd=REPO).returncode == 0


def test_make_secrets_writes_matching_token_files(tmp_path: Path) -> None:
    work = tmp_path / "secrets"
    work.mkdir()
    (work / "make-secrets.sh").write_bytes((COMPOSE_DIR / "secrets" / "make-secrets.sh").read_bytes())
    done = subprocess.run(["sh", str(work / "make-secrets.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    token = (work / "model-api-key").read_text()
    assert len(token) == 64
    loaded = run_python("from connector.settings import load_settings; print(load_settings().labeler.api_key"
                        ".get_secret_value())", {SETTINGS_FILE_VARIABLE: str(work / "radlabel-settings.yaml")})
    assert loaded.stdout.strip() == token, loaded.stderr
