from connector.settings import load_settings


def test_env_overrides_yaml_and_defaults(tmp_path, monkeypatch):
    cfg = tmp_path / "radlabel.yaml"
    cfg.write_text("kafka:\n  input_topic: from-yaml\n  group_id: g-yaml\nlabeler:\n  kind: llm\n")
    monkeypatch.setenv("RADLABEL_CONFIG", str(cfg))
    monkeypatch.setenv("RADLABEL_KAFKA__GROUP_ID", "g-env")
    s = load_settings()
    assert s.kafka.input_topic == "from-yaml"
    assert s.kafka.group_id == "g-env"  # env beats the file
    assert s.labeler.kind == "llm"
    assert s.kafka.output_topic == "fhir.observations"  # default kept
