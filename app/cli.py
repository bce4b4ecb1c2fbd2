"""The `custos` command: argument parsing, logging set-up and dispatch to the subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app import __version__
from app.core.config import EngineConfig, SimcamSource, parse_size
from app.core.errors import ConfigError, CustosError, ErrorKind

log = logging.getLogger("custos")

#: Exit codes: 0 ok, 1 a check found problems, 2 usage or configuration error, 3 runtime failure.
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3


def default_data_dir() -> Path:
    """Per-user data directory (XDG), used when --data is not given to the app."""
    import os

    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "custos"


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except CustosError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="custos",
        description="Custos: forensic video playback with an ONVIF Profile G recorder engine.",
        epilog="Run 'custos COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"custos {__version__}")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity on stderr (default: info)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    eng = sub.add_parser(
        "engine",
        help="run the recorder engine headless",
        description="Run the recorder engine without a GUI until SIGINT/SIGTERM or --duration. "
        "Without --config it records the built-in simulated camera.",
    )
    eng.add_argument("--data", type=Path, required=True, help="data directory (created if absent)")
    eng.add_argument("--config", type=Path, help="engine configuration JSON file")
    eng.add_argument(
        "--listen", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    eng.add_argument("--rtsp-port", type=int, default=8554, help="RTSP port, 0 = any free port")
    eng.add_argument("--http-port", type=int, default=8080, help="HTTP port, 0 = any free port")
    eng.add_argument(
        "--https-port",
        type=int,
        metavar="PORT",
        help="also serve ONVIF, REST and /status over HTTPS on this port, 0 = any free port "
        "(off unless given; REST Basic authentication is accepted only here)",
    )
    eng.add_argument(
        "--tls-cert",
        type=Path,
        metavar="PEM",
        help="HTTPS certificate chain, leaf first (default: a self-signed certificate made once "
        "in the data directory, rest-cert.pem; its SHA-256 is logged and in the ready file)",
    )
    eng.add_argument(
        "--tls-key", type=Path, metavar="PEM", help="unencrypted private key of --tls-cert"
    )
    eng.add_argument(
        "--discoverable",
        action="store_true",
        help="answer ONVIF WS-Discovery Probes and announce Hello/Bye (off by default; "
        "ONVIF SetDiscoveryMode switches it at run time)",
    )
    eng.add_argument(
        "--discovery-port",
        type=int,
        default=3702,
        metavar="PORT",
        help="WS-Discovery UDP port (default: %(default)s; on a loopback --listen it answers "
        "unicast Probes only)",
    )
    eng.add_argument("--duration", type=float, help="stop after this many seconds")
    eng.add_argument(
        "--ready-file", type=Path, help="write service URLs as JSON here when listening"
    )
    eng.set_defaults(run=_cmd_engine)

    sim = sub.add_parser(
        "simcam",
        help="serve the simulated camera over RTSP",
        description="Serve the simulated camera (stamped test pattern + tone) at rtsp://HOST:PORT/live.",
    )
    sim.add_argument(
        "--listen", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    sim.add_argument("--rtsp-port", type=int, default=8554, help="RTSP port, 0 = any free port")
    sim.add_argument(
        "--size", type=_size, default=(1280, 720), help="frame size (default: 1280x720)"
    )
    sim.add_argument("--fps", type=int, default=25, help="frames per second (default: 25)")
    sim.add_argument("--no-audio", action="store_true", help="video only")
    sim.add_argument(
        "--loop", type=float, metavar="SECONDS", help="serve a pre-encoded loop (cheap)"
    )
    sim.add_argument("--streams", type=int, default=1, help="serve N copies at /live1…/liveN")
    sim.add_argument("--duration", type=float, help="stop after this many seconds")
    sim.add_argument(
        "--ready-file", type=Path, help="write the stream URLs as JSON here when ready"
    )
    sim.set_defaults(run=_cmd_simcam)

    chk = sub.add_parser(
        "check",
        help="verify the recording store against its index",
        description="Verify every indexed frame against its segment file. Exit 0 if consistent, "
        "1 if problems were found (and not repaired), 2 on usage errors.",
    )
    chk.add_argument("--data", type=Path, required=True, help="data directory")
    chk.add_argument("--repair", action="store_true", help="fix what can be fixed and report it")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.set_defaults(run=_cmd_check)

    rec = sub.add_parser(
        "recordings",
        help="list recordings and tracks",
        description="List recordings with their tracks: codec, UTC start/end, frame count, gaps.",
    )
    rec.add_argument("--data", type=Path, required=True, help="data directory")
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.set_defaults(run=_cmd_recordings)
    _add_evidence_commands(sub)
    return parser


def _add_evidence_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    exp = sub.add_parser(
        "export",
        help="export a time range as a signed ONVIF export file (MP4)",
        description="Export a recording's time range without re-encoding into a signed ONVIF "
        "export file (split into numbered parts at --part-size). Video starts at the keyframe at "
        "or before --start. Without --key the installation's self-signed exporter key is used "
        "(reported as untrusted by verifiers). Ctrl+C cancels and leaves no partial file.",
    )
    exp.add_argument("--data", type=Path, required=True, help="data directory of the recorder")
    exp.add_argument("--recording", required=True, help="recording token")
    exp.add_argument(
        "--start", required=True, help="UTC start, ISO 8601 (e.g. 2026-11-21T10:00:00Z)"
    )
    exp.add_argument("--end", required=True, help="UTC end (exclusive), ISO 8601")
    exp.add_argument("--out", type=Path, required=True, help="output file (.mp4)")
    exp.add_argument("--track", action="append", dest="tracks", help="track token (repeatable)")
    exp.add_argument("--key", type=Path, help="signing key: PEM private key or PKCS#12 file")
    exp.add_argument("--cert", type=Path, help="certificate for a PEM --key (PEM or DER)")
    exp.add_argument(
        "--password-env", metavar="VAR", help="environment variable holding the key's password"
    )
    exp.add_argument("--unsigned", action="store_true", help="do not sign (not for evidence)")
    exp.add_argument("--operator", default="", help="operator name written into the file")
    exp.add_argument("--note", help="text attested by the signature (auib)")
    exp.add_argument(
        "--part-size", type=_bytes, default=None, help="split parts at this size (default 4G)"
    )
    exp.add_argument(
        "--keep-lock", action="store_true", help="keep the range protected from retention"
    )
    exp.set_defaults(run=_cmd_export)

    ver = sub.add_parser(
        "verify",
        help="verify the signatures of an ONVIF export file",
        description="Check every signing instance of an ONVIF export file and print the verdict, "
        "who exported it, when, from which cameras and whose certificate signed it. Exit codes: "
        "0 valid and trusted, 1 valid but signer untrusted, 2 unsigned, 3 invalid (modified), "
        "4 malformed, 5 usage error.",
    )
    ver.add_argument("file", type=Path)
    ver.add_argument(
        "--trust",
        type=Path,
        action="append",
        default=[],
        metavar="CA.pem",
        help="trusted CA or signer certificate (repeatable)",
    )
    ver.add_argument("--json", action="store_true", help="machine-readable report (schema 1)")
    ver.set_defaults(run=_cmd_verify)

    cs = sub.add_parser(
        "countersign",
        help="append a signing instance to an export file",
        description="Append a further signature (e.g. a receiving stamp) to an export file; "
        "earlier signatures stay untouched and valid.",
    )
    cs.add_argument("file", type=Path)
    cs.add_argument("--key", type=Path, required=True, help="PEM private key or PKCS#12 file")
    cs.add_argument("--cert", type=Path, help="certificate for a PEM --key (PEM or DER)")
    cs.add_argument(
        "--password-env", metavar="VAR", help="environment variable holding the key's password"
    )
    cs.add_argument("--note", help="text attested by this signature (auib)")
    cs.set_defaults(run=_cmd_countersign)


def _bytes(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    value = text.strip().upper().rstrip("B")
    try:
        if value and value[-1] in units:
            return int(float(value[:-1]) * units[value[-1]])
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 700M)") from None


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    run: Callable[[argparse.Namespace], int] = getattr(args, "run", _cmd_app)
    try:
        return run(args)
    except CustosError as exc:
        print(f"custos {args.command or ''}: {exc.message}", file=sys.stderr)
        usage = exc.kind in (ErrorKind.INVALID_ARGUMENT, ErrorKind.NOT_FOUND)
        return EXIT_USAGE if usage else EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


def _cmd_app(args: argparse.Namespace) -> int:
    """`custos` alone: the desktop app with its embedded engine (headless until the GUI lands)."""
    from app.engine.runtime import EngineSettings, run_engine

    data_dir = default_data_dir()
    log.info("recording the simulated camera into %s (stop with Ctrl+C)", data_dir)
    run_engine(EngineSettings(data_dir=data_dir, config=EngineConfig()), duration_s=None)
    return EXIT_OK


def _cmd_engine(args: argparse.Namespace) -> int:
    from app.engine.runtime import EngineSettings, run_engine

    config = EngineConfig.load(args.config) if args.config else EngineConfig()
    settings = EngineSettings(
        data_dir=args.data,
        config=config,
        listen=args.listen,
        rtsp_port=args.rtsp_port,
        http_port=args.http_port,
        ready_file=args.ready_file,
        https_port=args.https_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        discoverable=args.discoverable,
        discovery_port=args.discovery_port,
    )
    run_engine(settings, duration_s=args.duration)
    return EXIT_OK


def _cmd_simcam(args: argparse.Namespace) -> int:
    from app.engine.runtime import run_simcam_server

    source = SimcamSource(
        size=args.size, fps=args.fps, audio=not args.no_audio, loop_seconds=args.loop
    )
    run_simcam_server(
        source,
        listen=args.listen,
        port=args.rtsp_port,
        streams=args.streams,
        duration_s=args.duration,
        ready_file=args.ready_file,
    )
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    from app.engine.storage import check

    report = check(args.data, repair=args.repair)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.to_text())
    return EXIT_OK if report.ok or (args.repair and report.repaired_ok) else EXIT_PROBLEMS


def _time_arg(text: str, option: str) -> int:
    from app.core.time import parse_iso

    try:
        return parse_iso(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not an ISO 8601 time") from None


def _password(env: str | None) -> str | None:
    import os

    if env is None:
        return None
    if env not in os.environ:
        raise ConfigError(f"environment variable {env} (key password) is not set")
    return os.environ[env]


def _cmd_export(args: argparse.Namespace) -> int:
    from app.engine.export.command import run_export_command, signer_for
    from app.engine.export.job import DEFAULT_PART_SIZE_LIMIT, ExportRequest

    start, end = _time_arg(args.start, "--start"), _time_arg(args.end, "--end")
    if end <= start:
        raise ConfigError("--end must be after --start")
    password = _password(args.password_env)
    signer = signer_for(args.data, args.key, args.cert, password, unsigned=args.unsigned)
    request = ExportRequest(
        recording=args.recording,
        start_ns=start,
        end_ns=end,
        out_path=args.out,
        tracks=tuple(args.tracks) if args.tracks else None,
        part_size_limit=args.part_size or DEFAULT_PART_SIZE_LIMIT,
        operator=args.operator,
        note=args.note,
        signer=signer,
        keep_evidence_lock=args.keep_lock,
    )
    return run_export_command(args.data, request, out=sys.stdout)


def _cmd_verify(args: argparse.Namespace) -> int:
    from app.engine.export.verify import run_verify_command

    return run_verify_command(args.file, args.trust, args.json, sys.stdout)


def _cmd_countersign(args: argparse.Namespace) -> int:
    from app.engine.export.sign import run_countersign_command

    password = _password(args.password_env)
    return run_countersign_command(args.file, args.key, args.cert, password, args.note, sys.stdout)


def _cmd_recordings(args: argparse.Namespace) -> int:
    from app.engine.storage import list_recordings_report

    recordings = list_recordings_report(args.data)
    if args.json:
        print(json.dumps(recordings, indent=2))
        return EXIT_OK
    for rec in recordings:
        print(f"{rec['token']}  {rec.get('name', '')}")
        for track in rec["tracks"]:
            print(
                f"  {track['token']:<10} {track['type']:<8} {track.get('codec') or '-':<14} "
                f"{track.get('start') or '-'} … {track.get('end') or '-'}  "
                f"{track.get('frames', 0)} frames, {len(track.get('gaps', []))} gaps"
            )
    return EXIT_OK
