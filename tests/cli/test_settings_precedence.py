"""Settings do what the README says, for every command: flag > RADLABEL_* env > YAML > default, key by key; an
option not given overrides nothing; unknown keys and bad values are one-line errors naming what the user wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.settings import KafkaSettings, Settings, SettingsError, load_settings

from tests.hl7_fhir.conftest import FIXTURES

runner = CliRunner()
DEAD = "http://127.0.0.1:9"  # discard port: nothing listens, connection refused at once


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text("id,report\nr1,IMPRESSION: Cardiomegaly.\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch):
    monkeypatch.delenv("RADLABEL_CONFIG", raising=False)
    monkeypatch.setenv("RADLABEL_LABELER__MAX_RETRIES", "0")  # a dead endpoint fails at once


# -- label / convert: the labeler options ------------------------------------------------------------------------
def test_env_labeler_kind_is_not_overridden_by_an_option_not_given(reports, tmp_path):
    env = {"RADLABEL_LABELER__KIND": "llm", "RADLABEL_LABELER__ENDPOINT": DEAD}
    result = invoke("label", "--input", str(reports), "--output", str(tmp_path / "o.csv"), env=env)
    assert result.exit_code == 4  # the llm labeler from the environment was used: its server is down
    assert DEAD in one_line_error(result)
    # The option, when given, beats the environment.
    result = invoke("label", "--input", str(reports), "--output", str(tmp_path / "o.csv"), "--labeler", "rules",
                    env=env)
    assert result.exit_code == 0, result.output


def test_yaml_labeler_kind_is_used_and_env_beats_yaml(reports, tmp_path):
    config = tmp_path / "radlabel.yaml"
    config.write_text(f"labeler:\n  kind: llm\n  endpoint: {DEAD}\n")
    out = str(tmp_path / "o.csv")
    result = invoke("label", "--input", str(reports), "--output", out, "--config", str(config))
    assert result.exit_code == 4
    result = invoke("label", "--input", str(reports), "--output", out, "--config", str(config),
                    env={"RADLABEL_LABELER__KIND": "rules"})
    assert result.exit_code == 0, result.output


def test_convert_honours_the_same_precedence(tmp_path):
    out = str(tmp_path / "out")
    env = {"RADLABEL_LABELER__KIND": "llm", "RADLABEL_LABELER__ENDPOINT": DEAD}
    result = invoke("convert", str(FIXTURES / "v23_tx_mllp.hl7"), "--out", out, env=env)
    assert result.exit_code == 4 and "labeler unavailable" in one_line_error(result)


def test_endpoint_without_llm_never_silently_uses_the_rules(reports, tmp_path):
    result = invoke("label", "--input", str(reports), "--output", str(tmp_path / "o.csv"), "--endpoint", DEAD)
    assert result.exit_code == 2
    assert "--labeler llm" in one_line_error(result)
    assert not (tmp_path / "o.csv").exists()


# -- unknown keys and bad values ------------------------------------------------------------------------------
def test_misspelled_yaml_key_is_an_error_naming_it(tmp_path, reports):
    config = tmp_path / "radlabel.yaml"
    config.write_text("kafka:\n  security_protocl: SASL_SSL\n")
    for args in (["run", "--config", str(config)],
                 ["label", "--input", str(reports), "--output", str(tmp_path / "o.csv"), "--config", str(config)],
                 ["convert", str(FIXTURES / "v23_tx_mllp.hl7"), "--out", str(tmp_path / "o"), "--config", str(config)]):
        result = invoke(*args)
        assert result.exit_code == 2, args
        line = one_line_error(result)
        assert "kafka.security_protocl" in line and "security_protocol" in line and str(config) in line


def test_misspelled_env_key_is_an_error_naming_the_variable():
    result = invoke("run", env={"RADLABEL_KAFKA__SECURITY_PROTOCL": "SASL_SSL"})
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "RADLABEL_KAFKA__SECURITY_PROTOCL" in line and "RADLABEL_KAFKA__SECURITY_PROTOCOL" in line


def test_bad_values_name_the_variable_or_key_as_written_and_never_echo_the_value(tmp_path):
    line = one_line_error(invoke("run", env={"RADLABEL_KAFKA__MAX_BATCH": "lots"}))
    assert "environment variable RADLABEL_KAFKA__MAX_BATCH" in line and "integer" in line
    config = tmp_path / "c.yaml"
    config.write_text("kafka:\n  security_protocol: TLS-please\n  sasl_plain_password: hunter2\n")
    result = invoke("run", "--config", str(config))
    line = one_line_error(result)
    assert result.exit_code == 2 and f"settings file {config}, key kafka.security_protocol" in line
    assert "TLS-please" not in line and "hunter2" not in result.output
    line = one_line_error(invoke("run", "--labeler", "gpt"))
    assert "option --labeler" in line and "'rules' or 'llm'" in line


@pytest.mark.parametrize("content", ["kafka: [\n", "- just\n- a list\n"])
def test_broken_settings_file_is_one_line(tmp_path, content):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    result = invoke("run", "--config", str(config))
    assert result.exit_code == 2 and str(config) in one_line_error(result)


def test_missing_config_file_is_one_line(tmp_path):
    missing = tmp_path / "nope.yaml"
    for args in (["run", "--config", str(missing)],
                 ["convert", str(FIXTURES / "v23_tx_mllp.hl7"), "--out", str(tmp_path / "o"), "--config",
                  str(missing)]):
        result = invoke(*args)
        assert result.exit_code == 2
        assert f"{missing} does not exist" in one_line_error(result)
    result = invoke("run", env={"RADLABEL_CONFIG": str(missing)})
    assert "RADLABEL_CONFIG" in one_line_error(result)


# -- run: every key, and the new settings ---------------------------------------------------------------------
def test_run_settings_precedence_key_by_key(tmp_path, monkeypatch):
    from connector.cli.stream import _settings

    config = tmp_path / "c.yaml"
    config.write_text("kafka:\n  group_id: g-yaml\n  input_topic: in-yaml\n  auto_offset_reset: latest\n"
                      "http_host: 127.0.0.1\nhl7:\n  sender_timezone: Europe/Berlin\n")
    monkeypatch.setenv("RADLABEL_KAFKA__INPUT_TOPIC", "in-env")
    monkeypatch.setenv("RADLABEL_HL7__MAX_ESCAPE_REPEAT", "7")
    none = dict(bootstrap_servers=None, group_id=None, input_topic=None)
    s = _settings(config, kafka=none, labeler={"kind": None}, http_port=None, http_host=None)
    assert (s.kafka.group_id, s.kafka.input_topic, s.kafka.auto_offset_reset) == ("g-yaml", "in-env", "latest")
    assert (s.http_host, s.hl7.sender_timezone, s.hl7.max_escape_repeat) == ("127.0.0.1", "Europe/Berlin", 7)
    assert s.kafka.bootstrap_servers == KafkaSettings().bootstrap_servers and s.labeler.kind == "rules"
    s = _settings(config, kafka={**none, "input_topic": "in-flag"}, labeler={"kind": None}, http_host="::1")
    assert (s.kafka.input_topic, s.kafka.group_id, s.http_host) == ("in-flag", "g-yaml", "::1")


def test_config_path_is_not_leaked_into_the_environment(tmp_path):
    import os

    config = tmp_path / "c.yaml"
    config.write_text("kafka:\n  group_id: g\n")
    load_settings(config)
    assert "RADLABEL_CONFIG" not in os.environ


def test_unknown_sender_timezone_is_refused():
    with pytest.raises(SettingsError, match="^option --sender-timezone: unknown time zone 'Mars/Olympus'"):
        load_settings(hl7={"sender_timezone": "Mars/Olympus"})


async def test_stream_app_uses_bind_address_and_offset_reset():
    from connector.rules.labeler import RuleLabeler
    from connector.stream.app import StreamApp

    settings = Settings(http_host="127.0.0.1", kafka=KafkaSettings(auto_offset_reset="latest"))
    app = StreamApp(settings, RuleLabeler())
    assert app.http_host == "127.0.0.1"
    assert app.consumer._auto_offset_reset == "latest"


# -- --version, --help ----------------------------------------------------------------------------------------
def test_version():
    from connector import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"radlabel {__version__}"


def test_help_imports_no_heavy_library():
    """`radlabel --help` (and a command's --help) stays fast: the numeric and ML stacks load only in the commands
    that use them (measured wall time: README "Exit codes" / benchmarks are not timed tests)."""
    import subprocess
    import sys

    from tests.hl7_fhir.conftest import REPO

    code = ("import sys; from connector.cli import app\n"
            "from typer.testing import CliRunner\n"
            "for args in (['--help'], ['convert', '--help'], ['label', '--help'], ['evaluate', '--help']):\n"
            "    assert CliRunner().invoke(app, args).exit_code == 0\n"
            "heavy = ['pandas', 'sklearn', 'scipy', 'torch', 'transformers', 'fhir.resources', 'aiokafka', 'numpy']\n"
            "print(json.dumps([m for m in heavy if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True,
                          cwd=REPO, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_list_settings_from_the_environment_are_json(monkeypatch) -> None:  # noqa: ANN001
    from connector.settings import SettingsError, load_settings

    monkeypatch.setenv("RADLABEL_SCOPE__INCLUDE", '["ct:chest"]')
    assert load_settings(None).scope.include == ["ct:chest"]
    monkeypatch.setenv("RADLABEL_SCOPE__INCLUDE", '["ct:chest"')
    try:
        load_settings(None)
    except SettingsError as exc:
        assert "RADLABEL_SCOPE__INCLUDE" in str(exc) and "JSON" in str(exc)
    else:
        raise AssertionError("broken JSON must be an error naming the variable")
    monkeypatch.setenv("RADLABEL_SCOPE__INCLUDE", "ct:chest")
    try:
        load_settings(None)
    except SettingsError as exc:
        assert "RADLABEL_SCOPE__INCLUDE" in str(exc)
    else:
        raise AssertionError("a bare string is not a list")
    monkeypatch.delenv("RADLABEL_SCOPE__INCLUDE")
    monkeypatch.setenv("RADLABEL_MLLP__ALLOWED_PEERS", "10.0.0.1, 10.0.0.2")  # its own comma form still works
    assert load_settings(None).mllp.allowed_peers == ["10.0.0.1", "10.0.0.2"]
