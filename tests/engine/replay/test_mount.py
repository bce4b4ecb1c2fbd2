"""ReplayMount: one `replay` mount resolves replay/<token>, with the Replay Control session
timeout; GStreamer's absolute npt positions (plan.py) play from the right frame."""

from __future__ import annotations

from app.engine.replay import ReplayMount
from app.engine.rtsp import RtspServer
from app.protocols.rtsp.headers import parse_session
from app.protocols.rtsp.range import parse_range
from tests.engine.replay.conftest import ReplayRig
from tests.engine.replay.footage import RECORDING, frame_wall
from tests.engine.rtsp.helpers import RawClient

TCP = ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")


async def test_tokens_resolve_below_one_mount_with_the_replay_session_timeout(
    rig: ReplayRig,
) -> None:
    timeout = [30.0]
    mount = ReplayMount(rig.store, session_timeout_s=lambda: timeout[0])
    server = RtspServer(session_timeout_s=60)
    await mount.attach(server)
    async with server:
        await server.start("127.0.0.1", 0)
        client = await RawClient.connect("127.0.0.1", server.port)
        url = server.url(f"replay/{RECORDING}")
        described = await client.request("DESCRIBE", url)
        assert described.status == 200
        assert described.headers.get("Content-Base") == url + "/"
        assert (await client.request("DESCRIBE", server.url("replay/Nope"))).status == 404
        assert (await client.request("DESCRIBE", server.url("replay"))).status == 404
        timeout[0] = 12.5  # SetReplayConfiguration: new sessions get the new timeout
        setup = await client.request("SETUP", f"{url}/trackID=0", [TCP])
        assert parse_session(setup.headers.get("Session") or "").timeout == 13
        await client.close()


async def test_npt_seconds_since_1900_are_absolute_times(rig: ReplayRig) -> None:
    client = await rig.client()
    setup = await client.request("SETUP", f"{rig.url}/trackID=0", [TCP])
    session = parse_session(setup.headers.get("Session") or "").session_id
    npt = (frame_wall(25) + 2_208_988_800 * 10**9) / 1e9
    play = await client.request(
        "PLAY", rig.url, [("Session", session), ("Range", f"npt={npt:.3f}-")]
    )
    assert play.status == 200
    # The clean point at or before frame 25 is the keyframe 20.
    assert parse_range(play.headers.get("Range") or "").start == frame_wall(20)
    await client.close()
