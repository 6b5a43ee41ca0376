"""Errors a user can meet are one line that says what to do, with the exit code README "Exit codes" gives."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.cli.errors import ExitCode

from tests.hl7_fhir.conftest import FIXTURES

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def last_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[-1]


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return last_error(result)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _quick_failures(monkeypatch):
    monkeypatch.delenv("RADLABEL_CONFIG", raising=False)
    monkeypatch.setenv("RADLABEL_LABELER__MAX_RETRIES", "0")


@pytest.fixture
def reports(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,report\nr1,IMPRESSION: Cardiomegaly.\n", encoding="utf-8")
    return path


def test_exit_codes_are_distinct_and_documented():
    from tests.hl7_fhir.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    assert len({int(code) for code in ExitCode}) == len(ExitCode)
    for code in ExitCode:
        assert f"| {int(code)} |" in section, code


def test_missing_model_dir_is_one_line(tmp_path, reports):
    missing = tmp_path / "no-model"
    result = invoke("label", "--input", str(reports), "--output", str(tmp_path / "o.csv"), "--labeler", "llm",
                    "--model", str(missing))
    assert result.exit_code == ExitCode.USAGE
    assert f"model directory {missing} does not exist" in one_line_error(result)


def test_missing_ca_file_names_the_path(tmp_path, reports):
    missing = tmp_path / "hospital-ca.pem"
    env = {"RADLABEL_LABELER__CA_BUNDLE": str(missing)}
    result = invoke("label", "--input", str(reports), "--output", str(tmp_path / "o.csv"), "--labeler", "llm",
                    "--endpoint", "https://127.0.0.1:9", env=env)
    assert result.exit_code == ExitCode.USAGE and str(missing) in one_line_error(result)
    env = {"RADLABEL_KAFKA__SECURITY_PROTOCOL": "SSL", "RADLABEL_KAFKA__SSL_CAFILE": str(missing)}
    result = invoke("run", "--http-port", "-1", env=env)
    assert result.exit_code == ExitCode.USAGE and str(missing) in last_error(result)


def test_dead_endpoint_names_url_and_cause(tmp_path, reports):
    port = free_port()  # nothing listens: connection refused
    result = invoke("label", "--input", str(reports), "--output", str(tmp_path / "o.csv"), "--labeler", "llm",
                    "--endpoint", f"http://127.0.0.1:{port}/v1")
    assert result.exit_code == ExitCode.UNAVAILABLE
    line = one_line_error(result)
    assert f"http://127.0.0.1:{port}" in line and "refused the connection" in line


class _Refusing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def test_refused_credentials_are_named(tmp_path, reports):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = invoke("convert", str(FIXTURES / "v23_tx_mllp.hl7"), "--out", str(tmp_path / "o"), "--labeler",
                        "llm", "--endpoint", url)
    finally:
        server.shutdown()
    assert result.exit_code == ExitCode.UNAVAILABLE
    line = one_line_error(result)
    assert url in line and "HTTP 401" in line and "api_key" in line


def test_unreachable_broker_retries_then_names_the_address():
    address = f"127.0.0.1:{free_port()}"
    env = {"RADLABEL_KAFKA__CONNECT_RETRY_S": "1.5"}
    result = invoke("run", "--bootstrap-servers", address, "--http-port", "-1", env=env)
    assert result.exit_code == ExitCode.UNAVAILABLE
    line = last_error(result)
    assert address in line and "kafka.bootstrap_servers" in line
    retries = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{") and "broker_unreachable" in x]
    assert len(retries) >= 2  # it retried with backoff before giving up


def test_convert_fail_on_reject(tmp_path):
    files = [str(FIXTURES / "v23_tx_mllp.hl7"), str(FIXTURES / "not_oru_adt.hl7")]
    assert invoke("convert", *files, "--out", str(tmp_path / "a")).exit_code == ExitCode.OK
    result = invoke("convert", *files, "--out", str(tmp_path / "b"), "--fail-on-reject")
    assert result.exit_code == ExitCode.REJECTED
    assert json.loads(result.stdout.strip().splitlines()[-1])["rejected"] == 1  # the summary is still printed
    result = invoke("convert", files[0], "--out", str(tmp_path / "c"), "--fail-on-reject")
    assert result.exit_code == ExitCode.OK


def test_unexpected_exception_is_one_line_unless_debugging(monkeypatch, tmp_path):
    import connector.cli.convert as convert_module

    async def broken(*args, **kwargs):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(convert_module, "convert_files", broken)
    args = ("convert", str(FIXTURES / "v23_tx_mllp.hl7"), "--out", str(tmp_path / "o"))
    result = invoke(*args)
    assert result.exit_code == ExitCode.INTERNAL
    assert "RADLABEL_DEBUG=1" in one_line_error(result)
    monkeypatch.setenv("RADLABEL_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        invoke(*args)


def _self_signed(tmp_path):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    return tmp_path / "cert.pem", tmp_path / "key.pem"


def test_untrusted_tls_endpoint_is_named_with_what_to_do(tmp_path, reports):
    """A hospital model server with an internal CA: the one line names the URL, the cause and the setting to use."""
    import ssl

    cert, key = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        result = invoke("label", "--input", str(reports), "--output", str(tmp_path / "o.csv"), "--labeler", "llm",
                        "--endpoint", url)
        # with the CA named as the line says, TLS passes and the server's own answer (401) is what is reported
        trusted = invoke("label", "--input", str(reports), "--output", str(tmp_path / "o.csv"), "--labeler", "llm",
                         "--endpoint", url, env={"RADLABEL_LABELER__CA_BUNDLE": str(cert)})
    finally:
        server.shutdown()
    assert result.exit_code == ExitCode.UNAVAILABLE
    line = one_line_error(result)
    assert url in line and "TLS certificate not trusted" in line and "labeler.ca_bundle" in line
    assert trusted.exit_code == ExitCode.UNAVAILABLE and "HTTP 401" in one_line_error(trusted)


def test_a_bad_option_value_found_inside_a_command_is_a_usage_error(tmp_path, reports):
    """typer.BadParameter raised by a command body is a usage error (2) in one line, not an internal error."""
    result = invoke("label", "--input", str(reports), "--output", str(tmp_path / "o.csv"), "--scope", "bogus")
    assert result.exit_code == ExitCode.USAGE and "--scope" in one_line_error(result)
    result = invoke("evaluate", "--truth", str(reports), "--pred", f"A={reports}", "--out", str(tmp_path / "e"),
                    "--mode", "bogus")
    assert result.exit_code == ExitCode.USAGE and "--mode" in one_line_error(result)
