"""SOAP 1.2 over HTTP for the ONVIF client: Digest and UsernameToken auth, faults, device quirks.

One `SoapTransport` per device. HTTP Digest (PF-12): the first protected request is answered
401 with a challenge; the transport answers it and keeps the nonce in a pool of Digest sessions
(app/remote/http.py: one per request in flight, so concurrent requests never reach the device
with a lower `nc` than one it has seen), so later requests need no second round trip; it retries
once with a fresh nonce on `stale=true` (or when a device silently drops a nonce).
WS-UsernameToken (PF-13): a fresh 16-byte nonce per request and Created from the device's
clock (`clock_offset_ns`, set from GetSystemDateAndTime).

Quirks tolerated: a fault body with HTTP 200, 400 or 500 (PF-11), `text/xml` or no content type,
fault subcodes with any prefix (resolved to QNames).
"""

from __future__ import annotations

import base64
import logging
import secrets
from typing import Literal
from urllib.parse import urlsplit

import aiohttp
from lxml import etree

from app.core.time import Clock, SystemClock, format_iso
from app.protocols.soap.wsse import PASSWORD_DIGEST, password_digest
from app.remote.http import Credentials, DigestPool, read_bounded
from app.remote.onvif.errors import (
    NS_SOAP12,
    OnvifAuthError,
    OnvifError,
    OnvifFault,
    OnvifHttpError,
    QName,
)

log = logging.getLogger(__name__)

#: Largest answer accepted (a 1000-result search page is about 1 MB; leave room for verbose NVRs).
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: Deepest element nesting accepted in an answer.
MAX_RESPONSE_DEPTH = 64
#: Longest fault reason kept (device text ends up in logs and dialogs).
MAX_REASON_CHARS = 512

NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_NONCE_ENCODING = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

AuthMode = Literal["digest", "wsse", "both"]


class SoapTransport:
    """Posts SOAP 1.2 envelopes to one device and returns the answer's Envelope element."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: Credentials | None,
        *,
        auth: AuthMode = "digest",
        clock: Clock | None = None,
    ) -> None:
        self._session = session
        self._credentials = credentials
        self._auth = auth
        self._clock = clock or SystemClock()
        self._digests = DigestPool()
        #: device clock minus ours, for UsernameToken Created (PF-13).
        self.clock_offset_ns = 0
        #: Round trips made, for tests and diagnostics.
        self.requests = 0

    async def post(
        self,
        url: str,
        envelope: etree._Element,
        action: str,
        *,
        timeout_s: float,
        authenticate: bool = True,
    ) -> etree._Element:
        """The answer envelope; OnvifFault, OnvifAuthError, OnvifHttpError or OnvifError."""
        creds = self._credentials if authenticate else None
        if creds is not None and self._auth in ("wsse", "both"):
            _add_username_token(envelope, creds, self._clock.wall_ns() + self.clock_offset_ns)
        body = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
        use_digest = creds is not None and self._auth in ("digest", "both")
        content_type = f'application/soap+xml; charset=utf-8; action="{action}"'
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        digest = self._digests.take() if use_digest else None
        retried = False
        while True:
            headers = {"Content-Type": content_type}
            if creds is not None and digest is not None:
                headers["Authorization"] = digest.authorization("POST", _request_uri(url), creds)
            status, data, challenges = await self._send(url, body, headers, timeout)
            if status == 401 and use_digest and not retried:
                fresh = DigestPool.answer(challenges)
                if fresh is not None:
                    # A first challenge, a stale nonce, or a nonce the device forgot: answer once.
                    digest, retried = fresh, True
                    continue
            break
        if status == 401:
            user = creds.user if creds else "anonymous"
            raise OnvifAuthError(f"{url} refused the credentials of {user!r} (HTTP 401)")
        self._digests.give(digest)
        return _answer(url, status, data)

    async def _send(
        self, url: str, body: bytes, headers: dict[str, str], limit: aiohttp.ClientTimeout
    ) -> tuple[int, bytes, list[str]]:
        self.requests += 1
        try:
            async with self._session.post(url, data=body, headers=headers, timeout=limit) as resp:
                data = await read_bounded(
                    resp, MAX_RESPONSE_BYTES, lambda why: OnvifError(f"{url} {why}")
                )
                return resp.status, data, resp.headers.getall("WWW-Authenticate", [])
        except TimeoutError:
            raise OnvifError(f"{url} did not answer within {limit.total} s") from None
        except aiohttp.ClientError as exc:
            raise OnvifError(f"{url} unreachable: {exc}") from None


def _request_uri(url: str) -> str:
    """The request-target a Digest response signs: path and query of `url`."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _add_username_token(envelope: etree._Element, creds: Credentials, device_now_ns: int) -> None:
    header = envelope.find(f"{{{NS_SOAP12}}}Header")
    if header is None:
        header = etree.Element(f"{{{NS_SOAP12}}}Header")
        envelope.insert(0, header)
    nonce = secrets.token_bytes(16)
    created = format_iso(device_now_ns, digits=0)
    security = etree.SubElement(
        header, f"{{{NS_WSSE}}}Security", nsmap={"wsse": NS_WSSE, "wsu": NS_WSU}
    )
    security.set(f"{{{NS_SOAP12}}}mustUnderstand", "true")
    token = etree.SubElement(security, f"{{{NS_WSSE}}}UsernameToken")
    etree.SubElement(token, f"{{{NS_WSSE}}}Username").text = creds.user
    password = etree.SubElement(token, f"{{{NS_WSSE}}}Password", Type=PASSWORD_DIGEST)
    password.text = password_digest(nonce, created, creds.password)
    nonce_el = etree.SubElement(token, f"{{{NS_WSSE}}}Nonce", EncodingType=_NONCE_ENCODING)
    nonce_el.text = base64.b64encode(nonce).decode("ascii")
    etree.SubElement(token, f"{{{NS_WSU}}}Created").text = created


def _answer(url: str, status: int, data: bytes) -> etree._Element:
    """The answer Envelope, or the fault it carries raised, whatever the HTTP status (PF-11)."""
    root = _parse(data) if data.strip() else None
    if root is None or root.tag != f"{{{NS_SOAP12}}}Envelope":
        if status == 200:
            raise OnvifError(f"{url} answered HTTP 200 without a SOAP 1.2 envelope")
        raise OnvifHttpError(status, url)
    body = root.find(f"{{{NS_SOAP12}}}Body")
    payload = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
    if payload is None:
        raise OnvifError(f"{url} answered an envelope without a Body payload")
    if payload.tag == f"{{{NS_SOAP12}}}Fault":
        raise parse_fault(payload, status)
    if status != 200:
        raise OnvifHttpError(status, url)
    return root


def _parse(data: bytes) -> etree._Element | None:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    if root.getroottree().docinfo.internalDTD is not None:
        return None  # no device needs a DTD; refusing it keeps entity tricks out
    depth = max((sum(1 for _ in el.iterancestors()) for el in root.iter()), default=0)
    return root if depth < MAX_RESPONSE_DEPTH else None


def parse_fault(fault: etree._Element, status: int) -> OnvifFault:
    """A SOAP 1.2 Fault element as OnvifFault, every Value resolved as a QName in its scope."""
    code_el = fault.find(f"{{{NS_SOAP12}}}Code")
    code: QName = (NS_SOAP12, "Receiver")
    subcodes: list[QName] = []
    if code_el is not None:
        code = _qname(code_el) or code
        sub = code_el.find(f"{{{NS_SOAP12}}}Subcode")
        while sub is not None and len(subcodes) < 8:
            value = _qname(sub)
            if value is not None:
                subcodes.append(value)
            sub = sub.find(f"{{{NS_SOAP12}}}Subcode")
    reason = (fault.findtext(f"{{{NS_SOAP12}}}Reason/{{{NS_SOAP12}}}Text") or "").strip()
    return OnvifFault(code, tuple(subcodes), reason[:MAX_REASON_CHARS] or "(no reason)", status)


def _qname(parent: etree._Element) -> QName | None:
    value_el = parent.find(f"{{{NS_SOAP12}}}Value")
    if value_el is None or not (value_el.text or "").strip():
        return None
    text = (value_el.text or "").strip()
    prefix, colon, local = text.rpartition(":")
    namespace = value_el.nsmap.get(prefix if colon else None)
    return (namespace or "", local)
