"""Engine config: defaults record the simulated camera; every bad field is named in the error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.config import EngineConfig, RtspSource, SimcamSource, parse_size
from app.core.errors import ConfigError


def test_default_records_the_simulated_camera() -> None:
    assert EngineConfig().sources == (SimcamSource(),)


def test_load_full_file(tmp_path: Path) -> None:
    path = tmp_path / "engine.json"
    path.write_text(
        json.dumps(
            {
                "sources": [
                    {"type": "simcam", "recording": "Sim", "size": "1024X576", "fps": 10},
                    {"type": "rtsp", "recording": "Gate", "uri": "rtsp://u:p@192.0.2.1/s"},
                ],
                "retention": {"disk_budget_bytes": 10_000_000, "sweep_interval_s": 5},
            }
        )
    )
    config = EngineConfig.load(path)
    assert config.sources == (
        SimcamSource(recording="Sim", size=(1024, 576), fps=10),
        RtspSource(recording="Gate", uri="rtsp://u:p@192.0.2.1/s"),
    )
    assert config.retention.disk_budget_bytes == 10_000_000


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "top level must be a JSON object"),
        ({"sourcez": []}, r"unknown field\(s\) \['sourcez'\]"),
        ({"sources": [{"type": "ftp"}]}, r"sources\[0\]\.type must be 'simcam' or 'rtsp'"),
        ({"sources": [{"type": "rtsp", "recording": "a", "uri": "http://x"}]}, "rtsp:// URI"),
        ({"sources": [{"type": "rtsp", "recording": "a b", "uri": "rtsp://x"}]}, "token"),
        ({"sources": [{"type": "simcam"}, {"type": "simcam"}]}, "must be unique"),
        ({"sources": [{"type": "simcam", "fps": 0}]}, "fps"),
        ({"retention": {"disk_budget_bytes": -1}}, "disk_budget_bytes"),
        ({"rtsp_session_timeout_s": 1}, "rtsp_session_timeout_s"),
    ],
)
def test_bad_config_names_the_field(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EngineConfig.from_dict(raw)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        EngineConfig.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        EngineConfig.load(bad)


@pytest.mark.parametrize("text", ["1280", "12x12", "1281x720", "9000x720"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(text)
