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
from app.core.errors import CustosError, ErrorKind

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
    return parser


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
