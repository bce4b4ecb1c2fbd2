"""The engine's HTTPS listener end to end: same ONVIF + REST app, Basic only over TLS (AU-03/04).

A real Engine (no sources) on loopback ports 0 with HTTP and HTTPS; clients are httpx and the
stdlib ssl module, trusting only the certificate the engine generated or the test CA.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from app import __version__
from app.cli import build_parser
from app.core.config import EngineConfig
from app.core.errors import ConfigError
from app.engine.onvif.device import DeviceInfo
from app.engine.rest.tls import CERT_FILE, KEY_FILE, TlsConfigError, der_fingerprint, fingerprint
from app.engine.runtime import Engine, EngineSettings, _certificate_addresses
from app.engine.users import UserDirectory, UserLevel
from tests.engine.rest.test_https import issue, make_ca

ADMIN_PASSWORD = "admin-pw"
VIEWER = ("viewer", "viewer-pw")
PSIA = "{urn:psialliance-org}"
TDS = "{http://www.onvif.org/ver10/device/wsdl}"
DEVICE_INFO = "/PSIA/System/deviceInfo"
SOAP_TEMPLATE = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><s:Body>{body}</s:Body></s:Envelope>'
)
REPO = Path(__file__).resolve().parents[2]


def _settings(
    data: Path, *, https_port: int = 0, tls_cert: Path | None = None, tls_key: Path | None = None
) -> EngineSettings:
    """No sources, every port free, HTTPS on."""
    return EngineSettings(
        data_dir=data,
        config=EngineConfig(sources=()),
        rtsp_port=0,
        http_port=0,
        ready_file=data / "ready.json",
        https_port=https_port,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )


def _create_users(data: Path) -> None:
    users = UserDirectory.open(data, {"CUSTOS_ADMIN_PASSWORD": ADMIN_PASSWORD})
    if users.password_of(VIEWER[0]) is None:
        users.create(*VIEWER, UserLevel.USER)


@contextlib.asynccontextmanager
async def running(
    data: Path, *, https_port: int = 0, tls_cert: Path | None = None, tls_key: Path | None = None
) -> AsyncIterator[Engine]:
    """An engine with the admin and viewer accounts, created before it opens the users."""
    await asyncio.to_thread(_create_users, data)
    settings = _settings(data, https_port=https_port, tls_cert=tls_cert, tls_key=tls_key)
    async with Engine(settings) as engine:
        yield engine


def _pinned(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def presented_fingerprint(port: int, context: ssl.SSLContext) -> str:
    """The SHA-256 of the certificate the server sends in the handshake."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    ssl_object = writer.get_extra_info("ssl_object")
    assert isinstance(ssl_object, ssl.SSLObject)
    der = ssl_object.getpeercert(binary_form=True)
    assert der is not None
    writer.close()
    await writer.wait_closed()
    return der_fingerprint(der)


async def soap(
    client: httpx.AsyncClient,
    op: str,
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | None = None,
) -> httpx.Response:
    """POST a device service request whose SOAP body is `<tds:{op}/>` or the given element."""
    body = op if op.startswith("<") else f"<tds:{op}/>"
    return await client.post(
        "onvif/device_service",
        content=SOAP_TEMPLATE.format(body=body).encode(),
        headers={"Content-Type": "application/soap+xml; charset=utf-8", **(headers or {})},
        auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
    )


async def test_same_app_over_https_with_basic_there_and_digest_everywhere(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running(data) as engine:
        ready = json.loads((data / "ready.json").read_text())
        https_url, http_url = ready["https_url"], ready["http_url"]
        assert https_url == f"https://127.0.0.1:{engine.https_port}/"
        assert engine.https_port not in (None, 0, engine.http_port)
        pinned = _pinned(data / CERT_FILE)
        assert engine.https_port is not None
        presented = await presented_fingerprint(engine.https_port, pinned)
        assert engine.tls is not None
        assert ready["https_certificate_sha256"] == presented == engine.tls.fingerprint

        async with httpx.AsyncClient(base_url=https_url, verify=pinned, timeout=20) as tls:
            bare = await tls.get(DEVICE_INFO)
            basic = await tls.get(DEVICE_INFO, headers=_basic(*VIEWER))
            wrong = await tls.get(DEVICE_INFO, headers=_basic(VIEWER[0], "nope"))
            digest = await tls.get(DEVICE_INFO, auth=httpx.DigestAuth(*VIEWER))
            status = await tls.get("status")
        assert [c.split(" ", 1)[0] for c in bare.headers.get_list("WWW-Authenticate")] == [
            "Digest",
            "Basic",
        ]
        assert bare.headers.get_list("WWW-Authenticate")[1] == 'Basic realm="Custos"'
        for ok in (basic, digest):
            assert ok.status_code == 200, ok.text
            doc = etree.fromstring(ok.content)
            assert doc.tag == PSIA + "DeviceInfo"
            assert doc.findtext(PSIA + "firmwareVersion") == __version__
            assert doc.findtext(PSIA + "serialNumber") == DeviceInfo.for_host(data).serial_number
        assert wrong.status_code == 401
        assert status.status_code == 200 and status.json()["version"] == __version__

        async with httpx.AsyncClient(base_url=http_url, timeout=20) as plain:
            refused = [
                await plain.get(DEVICE_INFO, headers=_basic(*VIEWER)),
                # Proxy headers must not make plain HTTP count as TLS.
                await plain.get(
                    DEVICE_INFO, headers={**_basic(*VIEWER), "X-Forwarded-Proto": "https"}
                ),
                await plain.get(
                    DEVICE_INFO, headers={**_basic(*VIEWER), "Forwarded": "proto=https"}
                ),
            ]
            plain_digest = await plain.get(DEVICE_INFO, auth=httpx.DigestAuth(*VIEWER))
        for response in refused:
            assert response.status_code == 401
            challenges = response.headers.get_list("WWW-Authenticate")
            assert len(challenges) == 1 and challenges[0].startswith("Digest ")
            assert 'qop="auth"' in challenges[0]
            status_doc = etree.fromstring(response.content)
            assert status_doc.findtext(PSIA + "subStatusCode") == "badAuthorization"
        assert plain_digest.status_code == 200


async def test_onvif_over_https_with_digest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running(data) as engine:
        base = f"https://127.0.0.1:{engine.https_port}/"
        pinned = _pinned(data / CERT_FILE)
        digest = httpx.DigestAuth("admin", ADMIN_PASSWORD)
        async with httpx.AsyncClient(base_url=base, verify=pinned, timeout=20) as client:
            anonymous = await soap(client, "GetDeviceInformation")
            info = await soap(client, "GetDeviceInformation", auth=digest)
            services = await soap(
                client,
                "<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability>"
                "</tds:GetServices>",
                auth=digest,
            )
            basic = await soap(client, "GetDeviceInformation", _basic("admin", ADMIN_PASSWORD))
    assert anonymous.status_code == 401
    assert info.status_code == 200, info.text
    answer = etree.fromstring(info.content).find(".//" + TDS + "GetDeviceInformationResponse")
    assert answer is not None
    assert answer.findtext(TDS + "Manufacturer") == "Custos"
    assert answer.findtext(TDS + "FirmwareVersion") == __version__
    # XAddrs follow the scheme and port the client used (ONVIF core 6.4).
    xaddrs = etree.fromstring(services.content).findall(".//" + TDS + "XAddr")
    assert xaddrs and all(x.text and x.text.startswith(base + "onvif/") for x in xaddrs)
    # ONVIF's HTTP authentication is Digest only, on TLS too.
    assert basic.status_code == 401


async def test_self_signed_certificate_is_reused_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fingerprints = []
    for _ in range(2):
        async with running(data) as engine:
            assert engine.tls is not None and engine.https_port is not None
            presented = await presented_fingerprint(engine.https_port, _pinned(data / CERT_FILE))
            assert presented == engine.tls.fingerprint
            fingerprints.append(presented)
    assert fingerprints[0] == fingerprints[1]
    assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o600


async def test_configured_certificate_is_presented(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    cert_file, key_file, leaf = issue(tmp_path, "server", ca, chain=True)
    data = tmp_path / "data"
    async with running(data, tls_cert=cert_file, tls_key=key_file) as engine:
        assert engine.https_port is not None
        trusting_ca = _pinned(ca[2])
        assert await presented_fingerprint(engine.https_port, trusting_ca) == fingerprint(leaf)
        base = f"https://127.0.0.1:{engine.https_port}/"
        async with httpx.AsyncClient(base_url=base, verify=trusting_ca, timeout=20) as client:
            response = await client.get(DEVICE_INFO, auth=httpx.DigestAuth(*VIEWER))
        assert response.status_code == 200
        ready = json.loads((data / "ready.json").read_text())
        assert ready["https_certificate_sha256"] == fingerprint(leaf)
    assert not (data / CERT_FILE).exists() and not (data / KEY_FILE).exists()


async def test_wrong_key_fails_startup_before_anything_starts(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    cert_a, _, _ = issue(tmp_path, "a", ca)
    _, key_b, _ = issue(tmp_path, "b", ca)
    data = tmp_path / "data"
    with pytest.raises(TlsConfigError) as caught:
        async with Engine(_settings(data, tls_cert=cert_a, tls_key=key_b)):
            pytest.fail("the engine started with a mismatched certificate and key")
    assert caught.value.message.startswith(
        f"HTTPS key {key_b} does not match the certificate {cert_a}"
    )
    assert not (data / "ready.json").exists() and not (data / "index.sqlite3").exists()


async def test_https_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            async with running(tmp_path / "data", https_port=port):
                pytest.fail("the engine started on a port in use")
    assert caught.value.message.startswith(f"cannot listen for HTTPS on 127.0.0.1:{port}: ")


def test_settings_refuse_inconsistent_https_options(tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    with pytest.raises(ConfigError, match="needs its key"):
        EngineSettings(data_dir=tmp_path, https_port=0, tls_cert=pem)
    with pytest.raises(ConfigError, match=f"TLS certificate {pem} given but no HTTPS port"):
        EngineSettings(data_dir=tmp_path, tls_cert=pem, tls_key=pem)
    with pytest.raises(ConfigError, match="cannot share port 8443"):
        EngineSettings(data_dir=tmp_path, http_port=8443, https_port=8443)
    assert EngineSettings(data_dir=tmp_path, http_port=0, https_port=0).https_port == 0


@pytest.mark.parametrize(
    ("listen", "names"),
    [
        ("192.0.2.5", ("192.0.2.5",)),
        ("::1", ("::1",)),
        ("0.0.0.0", ()),
        ("::", ()),
        ("fe80::1%eth0", ()),
        ("recorder.local", ()),
    ],
)
def test_a_specific_listen_address_joins_the_generated_certificate(
    listen: str, names: tuple[str, ...]
) -> None:
    assert _certificate_addresses(listen) == names


def test_cli_https_options_and_a_bad_pair_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["engine", "--data", "d", "--https-port", "0", "--tls-cert", "c", "--tls-key", "k"]
    )
    assert (args.https_port, args.tls_cert, args.tls_key) == (0, Path("c"), Path("k"))
    assert build_parser().parse_args(["engine", "--data", "d"]).https_port is None

    ca = make_ca(tmp_path)
    cert_a, _, _ = issue(tmp_path, "a", ca)
    _, key_b, _ = issue(tmp_path, "b", ca)
    config = tmp_path / "engine.json"
    config.write_text('{"sources": []}')
    env = {**os.environ, "CUSTOS_ADMIN_PASSWORD": ADMIN_PASSWORD}
    command = [sys.executable, "-m", "app", "engine", "--data", str(tmp_path / "data")]
    command += ["--config", str(config), "--rtsp-port", "0", "--http-port", "0"]
    command += ["--https-port", "0", "--tls-cert", str(cert_a), "--tls-key", str(key_b)]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"custos engine: HTTPS key {key_b} does not match the certificate {cert_a} "
        "(the first certificate in the file must be the one issued for this key)"
    )
