"""`radlabel sink` on the command line: the option names of issue 12, one-line errors with the documented exit
codes, and the settings precedence (flag > RADLABEL_* env > YAML > default) for the sink's keys."""

from __future__ import annotations

import pytest

from connector.cli.errors import ExitCode
from connector.settings import load_settings

from tests.cli.conftest import _restore_logging  # noqa: F401 - the CLI configures process-wide logging
from tests.cli.test_errors_and_exit_codes import free_port, invoke, last_error


def test_fhir_url_is_required():
    result = invoke("sink", "--bootstrap-servers", "127.0.0.1:1")
    assert result.exit_code == ExitCode.USAGE
    assert last_error(result) == "error: sink.fhir_url is required: --fhir-url URL or RADLABEL_SINK__FHIR_URL"


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--profile", "hospital"], {}, "option --profile"),
    ([], {"RADLABEL_SINK__RETIRES": "delete"}, "RADLABEL_SINK__RETIRES"),
    ([], {"RADLABEL_SINK__AUTH__KIND": "bearer"}, "auth kind bearer needs token or token_file"),
])
def test_bad_settings_are_one_line_usage_errors(args, env, named):
    result = invoke("sink", "--bootstrap-servers", "127.0.0.1:1", "--fhir-url", "http://127.0.0.1:9", *args, env=env)
    assert result.exit_code == ExitCode.USAGE
    assert named in last_error(result) and "Traceback" not in result.stderr


def test_unreachable_broker_is_unavailable_naming_the_address():
    address = f"127.0.0.1:{free_port()}"
    result = invoke("sink", "--bootstrap-servers", address, "--fhir-url", "http://127.0.0.1:9", "--http-port", "-1",
                    env={"RADLABEL_KAFKA__CONNECT_RETRY_S": "1"})
    assert result.exit_code == ExitCode.UNAVAILABLE and address in last_error(result)


def test_sink_settings_precedence(tmp_path, monkeypatch):
    config = tmp_path / "sink.yaml"
    config.write_text("sink:\n  group_id: from-yaml\n  retire: delete\n  max_in_flight: 3\n  fhir_url: http://yaml\n")
    monkeypatch.setenv("RADLABEL_SINK__MAX_IN_FLIGHT", "5")
    monkeypatch.setenv("RADLABEL_SINK__FHIR_URL", "http://env")
    settings = load_settings(config, sink=dict(fhir_url="http://flag", group_id=None, profile="enrich"))
    s = settings.sink
    assert (s.fhir_url, s.group_id, s.retire, s.max_in_flight, s.profile) == (
        "http://flag", "from-yaml", "delete", 5, "enrich")
    assert s.topic is None and s.conditional_references == "server"  # defaults
