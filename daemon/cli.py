"""Command line: ``al-daemon run | demo | simulate | stack | status | export | recover``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from daemon import __version__
from daemon.errors import EXIT_TEMPORARY, ArgillaUnavailable, DaemonError, DataError, DiskError, SimulationError
from daemon.logs import fatal, setup_logging

log = logging.getLogger("daemon")


def load_settings(argv: list[str]):
    """Settings from flags (``--batch-size 20``), the environment (``AL_BATCH_SIZE``) and ``.env``."""
    from daemon.config import Settings

    return Settings(_cli_parse_args=argv)


def cmd_run(argv: list[str]) -> int:
    settings = load_settings(argv)  # before the heavy imports: a bad setting is refused at once
    setup_logging(settings.log_level, settings.log_format)
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: every thread's stack on stderr
    from daemon.app import Service

    log.info("settings: %s", json.dumps(settings.public()))
    return Service(settings).run()


def _stack(args: argparse.Namespace):
    from daemon.stack import Stack, StackConfig

    return Stack(StackConfig.from_env())


def cmd_stack(args: argparse.Namespace) -> int:
    from daemon.stack import ANNOTATOR, OWNER

    setup_logging()
    stack = _stack(args)
    if args.action == "install":
        stack.install()
    elif args.action == "up":
        stack.up()
        print(f"Argilla is up at {stack.config.url}")
        print(f"  owner:     {OWNER.username} / {OWNER.password}  (API key {OWNER.api_key})")
        print(f"  annotator: {ANNOTATOR.username} / {ANNOTATOR.password}  (API key {ANNOTATOR.api_key})")
    elif args.action == "down":
        stack.down()
        print("stack stopped")
    elif args.action == "reset":
        stack.reset()
        print("stack stopped and its data deleted")
    elif args.action == "status":
        running = stack.running()
        print(json.dumps({"url": stack.config.url, "healthy": stack.healthy(), "running": running}))
        return 0 if stack.healthy() else 1
    return 0


def _annotators(settings, args: argparse.Namespace, data=None) -> list:
    """The simulated annotators: one answering with the pool's gold labels, or with ``--annotators N`` a team of N
    Argilla users answering from the pool file's recorded ``annotations`` (a fresh one per request)."""
    from daemon.app import load_data
    from daemon.simulate import AnnotationSource, SimulatedAnnotator, SimulationConfig, load_annotations, team

    data = data or load_data(settings)
    if data.pool.gold is None:
        raise DaemonError(
            f"{settings.pool_file}: the simulated annotator needs gold labels in {settings.label_column!r}"
        )
    gold = {text: label for text, label in zip(data.pool.texts, data.pool.gold, strict=True) if label is not None}
    keys, source = [args.annotator_key], None
    if args.annotators > 1 or args.from_annotations:
        try:
            source = AnnotationSource(load_annotations(settings.pool_file, settings.text_column), seed=settings.seed)
        except DataError as exc:
            raise DataError(f"--annotators/--from-annotations need recorded annotations: {exc}") from None
        if args.annotators > 1:
            import httpx

            try:
                keys = team(
                    settings.argilla_url,
                    settings.argilla_api_key.get_secret_value(),
                    settings.workspace,
                    args.annotators,
                )
            except (SimulationError, httpx.HTTPError) as exc:
                raise SimulationError(
                    f"--annotators {args.annotators}: could not set up the simulated users ({exc}); it needs Argilla "
                    "reachable at AL_ARGILLA_URL and an owner's key in AL_ARGILLA_API_KEY"
                ) from None
    return [
        SimulatedAnnotator(
            SimulationConfig(
                argilla_url=settings.argilla_url,
                api_key=key,
                dataset=settings.dataset,
                workspace=settings.workspace,
                delay=args.delay,
                discard_rate=args.discard_rate,
                noise_rate=args.noise_rate,
                seed=settings.seed + number,
            ),
            gold,
            data.labels,
            source,
            settings.none_label if data.multi_label else None,
        )
        for number, key in enumerate(keys)
    ]


def cmd_simulate(args: argparse.Namespace, rest: list[str]) -> int:
    settings = load_settings(rest)
    setup_logging(settings.log_level, settings.log_format)
    annotators = _annotators(settings, args)

    def stop(*_) -> None:
        for annotator in annotators:
            annotator.stop()

    signal.signal(signal.SIGTERM, stop)
    for annotator in annotators[1:]:
        annotator.start_thread()
    try:
        annotators[0].run(max_records=args.max_records)
    except KeyboardInterrupt:
        pass
    stop()
    for annotator in annotators:
        print(json.dumps(vars(annotator.counts)))
    return 0


def cmd_demo(args: argparse.Namespace, rest: list[str]) -> int:
    """Bring up the local stack and run the daemon on the bundled TREC-6 pool (optionally self-labelled)."""
    from daemon.app import Service
    from daemon.stack import ANNOTATOR, OWNER

    setup_logging()
    stack = _stack(args)
    stack.up()
    os.environ.setdefault("AL_ARGILLA_URL", stack.config.url)
    os.environ.setdefault("AL_ARGILLA_API_KEY", OWNER.api_key)
    os.environ.setdefault("AL_DATASET", "trec6-demo")
    os.environ.setdefault("AL_STATE_DIR", str(Path("state") / "trec6-demo"))
    os.environ.setdefault("AL_EXIT_ON_STOP", "false")  # keep the status page up after the stop
    settings = load_settings(rest)
    setup_logging(settings.log_level, settings.log_format)
    print(
        f"\nArgilla UI: {stack.config.url}  (annotator {ANNOTATOR.username} / {ANNOTATOR.password}; "
        f"owner {OWNER.username} / {OWNER.password})"
    )
    print(f"Status:     http://{settings.status_host}:{settings.status_port}/\n", flush=True)
    annotators = []
    data = None
    if args.simulate:
        from daemon.app import preflight

        data = preflight(settings)  # read once: the daemon gets the same checked data
        args.annotator_key = ANNOTATOR.api_key
        annotators = _annotators(settings, args, data)
        for annotator in annotators:
            annotator.start_thread()
    try:
        return Service(settings, data=data).run()
    finally:
        for annotator in annotators:
            annotator.stop()
            print(f"simulated annotator: {json.dumps(vars(annotator.counts))}")


def cmd_status(args: argparse.Namespace) -> int:
    import httpx

    token = args.token or os.environ.get("AL_STATUS_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{args.url.rstrip('/')}/status", timeout=5, headers=headers)
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        hint = " (set --token or AL_STATUS_TOKEN)" if exc.response.status_code == 401 else ""
        print(f"the daemon at {args.url} answered {exc.response.status_code}{hint}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"no daemon answering at {args.url}: {exc}", file=sys.stderr)
        return 1
    data = response.json()
    print(json.dumps(data, indent=1) if args.json else format_status(data))
    return 0


def format_status(s: dict) -> str:
    """The status document for a terminal: the same numbers as the status page."""
    from daemon.report import number as num
    from daemon.report import signal_digits

    batch = s.get("batch") or {}
    acc, f1, stop = s.get("accuracy") or {}, s.get("macro_f1") or {}, s.get("stop") or {}
    lines = [
        f"state:     {s.get('state')}{' (' + s['reason'] + ')' if s.get('reason') else ''}",
        f"dataset:   {s.get('dataset')} in {s.get('workspace')}   model: {s.get('model')} / {s.get('query_strategy')}",
        f"rounds:    {s.get('round')} trained   labels: {s.get('labels')}   discarded: {s.get('discarded')}"
        f"   unlabelled: {num(s.get('unlabelled'))} of {num(s.get('pool_size'))}",
        f"batch:     {num(batch.get('batch_id'))}: {batch.get('done', 0)}/{num(batch.get('total'))} done"
        f" ({batch.get('completed', 0)} submitted, {batch.get('discarded', 0)} discarded,"
        f" {batch.get('pending', 0)} pending)",
        f"accuracy:  {num(acc.get('last'))} (best {num(acc.get('best'))} at round {num(acc.get('best_round'))})"
        f"   macro-F1: {num(f1.get('last'))} (best {num(f1.get('best'))})",
        f"stop rule: {stop.get('mode')} of [{', '.join(stop.get('criteria') or [])}]"
        + (
            f"   stopped: {stop['reason']}"
            if stop.get("reason")
            else f"   projected stop: round {num(stop.get('projected_round'))}"
            f" (~{num(stop.get('projected_labels'))} labels)"
        ),
    ]
    if s.get("last_error"):
        lines.append(f"error:     {s['last_error']}")
    for warning in s.get("warnings") or []:
        lines.append(f"warning:   {warning}")
    if (s.get("changes") or {}).get("total"):
        kinds = ", ".join(f"{kind} {n}" for kind, n in s["changes"]["by_kind"].items())
        lines.append(f"changes:   {kinds} (made in Argilla after training)")
    lines.append("signals:")
    for name, view in (s.get("signals") or {}).items():
        flags = ("fired " if view.get("fired") else "") + ("(stops the run)" if view.get("stops") else "")
        shown = num(view.get("value"), signal_digits(name))
        lines.append(f"  {name:<22} {shown:>8}  threshold {num(view.get('threshold')):>6}  {flags}")
    last = s.get("last_round")
    if last:
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in last["seconds"].items())
        lines.append(f"last round {last['round']}: {phases}")
    for row in (s.get("history") or [])[-5:]:
        kappa = (row.get("signals") or {}).get("kappa_average", {}).get("value")
        lines.append(
            f"  round {row['round']:>3}: labels {row['labels']:>5}  accuracy {num(row['accuracy'])}"
            f"  macro-F1 {num(row['macro_f1'])}  kappa {num(kappa)}"
        )
    if s.get("export"):
        lines.append(f"export:    {s['export'].get('path') or s['export'].get('error')}")
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace, rest: list[str]) -> int:
    from daemon.app import export_now

    settings = load_settings(rest)
    setup_logging(settings.log_level, settings.log_format)
    path = export_now(settings, Path(args.out) if args.out else None)
    print(f"exported to {path}")
    return 0


def cmd_recover(args: argparse.Namespace, rest: list[str]) -> int:
    from daemon.app import recover_now

    settings = load_settings(rest)
    setup_logging(settings.log_level, settings.log_format)
    print(recover_now(settings, replace=args.replace))
    return 0


def _simulation_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per record")
    parser.add_argument("--discard-rate", type=float, default=0.0, help="share of records discarded")
    parser.add_argument("--noise-rate", type=float, default=0.0, help="share of labels replaced by a wrong one")
    parser.add_argument(
        "--annotators",
        type=int,
        default=1,
        help="simulated team size: N>1 creates annotator users sim-annotator-1..N (owner key) who answer from the "
        "pool file's recorded `annotations` (e.g. data/politeness)",
    )
    parser.add_argument(
        "--from-annotations",
        action="store_true",
        help="answer from the pool file's recorded `annotations` (a fresh one per request) instead of its gold labels",
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="al-daemon", description="Active-learning daemon for Argilla")
    parser.add_argument("--version", action="version", version=f"al-daemon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the daemon (settings as flags, AL_* env or .env; see `run --help`)", add_help=False)
    demo = sub.add_parser(
        "demo",
        help="local Argilla stack + daemon on the bundled TREC-6 pool",
        description="Start the local Argilla stack and run the daemon on the bundled TREC-6 pool. Every flag of "
        "`al-daemon run` is accepted too (e.g. --batch-size 10 --kappa-threshold 0.95; list: `al-daemon run "
        "--help`), as are the AL_* environment variables.",
    )
    demo.add_argument("--simulate", action="store_true", help="let a simulated annotator label unattended")
    _simulation_flags(demo)
    simulate = sub.add_parser("simulate", help="simulated annotator for a running daemon's dataset")
    simulate.add_argument("--annotator-key", default="annotator.apikey", help="API key of an annotator user")
    simulate.add_argument("--max-records", type=int, default=None)
    _simulation_flags(simulate)
    stack = sub.add_parser("stack", help="the local Argilla stack (no Docker)")
    stack.add_argument("action", choices=["install", "up", "down", "status", "reset"])
    status = sub.add_parser("status", help="print a running daemon's status")
    status.add_argument("--url", default="http://127.0.0.1:8765")
    status.add_argument("--token", default=None, help="bearer token (default: $AL_STATUS_TOKEN)")
    status.add_argument("--json", action="store_true")
    export = sub.add_parser(
        "export", help="write the labelled set, model and report from a run's state (settings as for `run`)"
    )
    export.add_argument("--out", default=None, help="target folder (default: AL_EXPORT_DIR or <state_dir>/export)")
    recover = sub.add_parser(
        "recover",
        help="rebuild a lost or cut-short state.json from the run's dataset in Argilla (settings as for `run`)",
        description="Rebuild AL_STATE_DIR/state.json from the records of AL_DATASET in Argilla: batches, labels, "
        "discards and votes (the metrics of past rounds are lost). The old file is kept beside the new one.",
    )
    recover.add_argument("--replace", action="store_true", help="rebuild even though the state is readable")

    if argv and argv[0] == "run":
        command, rest = "run", argv[1:]
        args = None
    else:
        args, rest = parser.parse_known_args(argv)
        command = args.command
        if rest and command in ("stack", "status"):
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if command == "run":
            return cmd_run(rest)
        if command == "demo":
            return cmd_demo(args, rest)
        if command == "simulate":
            return cmd_simulate(args, rest)
        if command == "stack":
            return cmd_stack(args)
        if command == "export":
            return cmd_export(args, rest)
        if command == "recover":
            return cmd_recover(args, rest)
        return cmd_status(args)
    except ValidationError as exc:
        fatal(f"invalid settings: {_validation_message(exc)}", 2)
        return 2
    except ArgillaUnavailable as exc:  # a restart later may well work: systemd restarts on this code
        fatal(str(exc), EXIT_TEMPORARY)
        return EXIT_TEMPORARY
    except DiskError as exc:  # a full disk may pass (restart later); no permission needs a person
        code = EXIT_TEMPORARY if exc.temporary else 2
        fatal(str(exc), code)
        return code
    except DaemonError as exc:  # needs a person (bad input, settings, state or dataset): RestartPreventExitStatus=2
        fatal(str(exc), 2)
        return 2


def _validation_message(exc: ValidationError) -> str:
    """Every problem on one line: ``poll_interval (AL_POLL_INTERVAL): Input should be ...; ...``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        env = f" (AL_{where.upper()})" if where != "settings" else ""
        parts.append(f"{where}{env}: {error['msg']}")
    return "; ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
