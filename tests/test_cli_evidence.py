"""`custos export | verify | countersign` end to end on footage the engine recorded (EX-, SG-)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import av
import pytest
from cryptography.hazmat.primitives import serialization

from app.core.config import EngineConfig, SimcamSource
from app.core.time import format_iso
from app.engine.runtime import Engine, EngineSettings
from tests.engine.media_checks import stored_frames
from tests.formats.oef.synth import certificate, ec_key

SMALL = (1024, 576)


def _custos(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _receiver_key(folder: Path) -> tuple[Path, Path]:
    key = ec_key()
    cert = certificate(key, "Court clerk")
    key_path, cert_path = folder / "clerk.key", folder / "clerk.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.mark.slow
async def test_export_verify_countersign_through_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = EngineSettings(
        data_dir=data,
        config=EngineConfig(sources=(SimcamSource(size=SMALL, audio=True),)),
        rtsp_port=0,
        http_port=0,
    )
    async with Engine(settings):
        await asyncio.sleep(4.5)
    frames = stored_frames(data, "SimCam")
    start, end = frames[10].ref.wall_ns, frames[-1].ref.wall_ns
    out = tmp_path / "evidence.mp4"

    exported = await asyncio.to_thread(
        _custos,
        "export", "--data", str(data), "--recording", "SimCam",
        "--start", format_iso(start), "--end", format_iso(end),
        "--out", str(out), "--operator", "Officer Dibble", "--note", "case 42",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "self-signed" in exported.stderr.lower() or "untrusted" in exported.stderr.lower()
    assert str(out) in exported.stdout

    # Video starts at the keyframe at or before --start (frame 0, keyframes every 50 frames).
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        decoded = sum(1 for _ in container.decode(video))
    # --end is exclusive, as everywhere in the store; format_iso truncates to milliseconds.
    end_ms = end // 1_000_000 * 1_000_000
    expected = [f for f in frames if f.ref.wall_ns < end_ms]
    assert decoded == len(expected)

    verified = await asyncio.to_thread(_custos, "verify", "--json", str(out))
    report = json.loads(verified.stdout)
    assert verified.returncode == 1, verified.stdout  # valid, signer untrusted (default key)
    assert report["verdict"] == "valid-untrusted"
    assert report["export"]["operator"] == "Officer Dibble"

    trusted = await asyncio.to_thread(
        _custos, "verify", "--trust", str(data / "export-signer" / "cert.pem"), str(out)
    )
    assert trusted.returncode == 0, trusted.stdout

    key, cert = _receiver_key(tmp_path)
    signed = await asyncio.to_thread(
        _custos, "countersign", str(out), "--key", str(key), "--cert", str(cert), "--note", "rcvd"
    )
    assert signed.returncode == 0, signed.stderr + signed.stdout
    both = await asyncio.to_thread(
        _custos, "verify", "--json", "--trust", str(data / "export-signer" / "cert.pem"),
        "--trust", str(cert), str(out),
    )  # fmt: skip
    assert both.returncode == 0, both.stdout
    assert len(json.loads(both.stdout)["instances"]) == 2

    raw = bytearray(out.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    out.write_bytes(bytes(raw))
    tampered = await asyncio.to_thread(_custos, "verify", str(out))
    assert tampered.returncode == 3, tampered.stdout


def test_export_refuses_bad_arguments(tmp_path: Path) -> None:
    result = _custos(
        "export", "--data", str(tmp_path), "--recording", "X", "--start", "yesterday",
        "--end", "2026-01-01T00:00:00Z", "--out", str(tmp_path / "x.mp4"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "--start 'yesterday' is not an ISO 8601 time" in result.stderr
