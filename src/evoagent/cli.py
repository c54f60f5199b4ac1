"""The `evoagent` command line: run, resume, status, report, best, lineage, show, adapt, suite, check, bench, kb."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from .errors import ClusterLost, EvoagentError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ClusterLost as exc:  # the run is stored and closed; only Ray's link to the lost head is left
        print(f"evoagent: error: {exc}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)  # tearing that link down at exit waits seconds on the head, and may crash
    except EvoagentError as exc:
        print(f"evoagent: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"evoagent: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evoagent: interrupted", file=sys.stderr)
        return 130


def _executor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("local", "ray"),
                   help="what runs the evaluations: local fork servers, or Ray (pip install \"evoagent[ray]\"); "
                        "sets [executor] kind")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="the Ray cluster: auto, ray://host:10001 or host:port (default: start a local Ray)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evoagent", description="Agentic evolutionary search over code.")
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("run", help="start a run from a TOML config or a built-in target name")
    p.add_argument("config", help="a run config (TOML) or a built-in target: attention, kernel (or kernel:PROBLEM.py)")
    p.add_argument("problem", nargs="?", help="with the kernel target: the problem file (KernelBench format)")
    p.add_argument("--shape", action="append", metavar="NAME=VALUE",
                   help="kernel target: set a size constant of the problem (repeatable)")
    p.add_argument("--run-dir", help="where the run is stored (new directory; default runs/<name>-<time>)")
    p.add_argument("--trials", type=_nonneg_int, help="variation trials in the run (seeds not counted)")
    p.add_argument("--hours", type=_nonneg_float, help="wall-clock hours for this invocation")
    p.add_argument("--suite", help="configuration suite of the target (built-in targets)")
    p.add_argument("--seed", action="append", dest="seeds", metavar="NAME",
                   help="a shipped seed kernel to start from, by name (repeatable; attention: fa2 (default), "
                        "hopper-tma); replaces the config's seeds")
    p.add_argument("--lang", choices=("triton", "cuda"),
                   help="the attention kernels' language: start from its seed (triton: fa2, cuda: cuda-fa2); "
                        "with --seed, every seed must be in it")
    p.add_argument("--slots", type=_pos_int, help="variation steps in flight at once (default: [engine] slots, "
                                                 "1; with --executor ray, one per CPU of the cluster)")
    p.add_argument("--model", help="the agent's model (sets [operator.llm] model; needs its API key)")
    p.add_argument("--usd", type=_nonneg_float, help="dollar budget for model calls in the run (0: none)")
    p.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    _executor_arguments(p)
    p.set_defaults(func=_commands().run)

    p = sub.add_parser("resume", help="continue a run; finished trials are kept, interrupted ones retried")
    p.add_argument("run_dir")
    p.add_argument("--trials", type=_nonneg_int, help="raise or lower the run's trial budget")
    p.add_argument("--hours", type=_nonneg_float)
    p.add_argument("--usd", type=_nonneg_float, help="raise or lower the run's dollar budget")
    p.add_argument("--quiet", action="store_true")
    _executor_arguments(p)
    p.set_defaults(func=_commands().resume)

    p = sub.add_parser("status", help="summary of a run (works while it runs)")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--watch", action="store_true", help="refresh in place until the run stops (Ctrl-C leaves)")
    p.add_argument("--interval", type=_pos_float, default=2.0, help="seconds between refreshes with --watch")
    p.set_defaults(func=_commands().status)

    p = sub.add_parser("report", help="write a self-contained HTML report with plots (works while it runs)")
    p.add_argument("run_dir")
    p.add_argument("--out", help="the HTML file (default RUN_DIR/report.html; only an earlier report is replaced)")
    p.add_argument("--open", action="store_true", help="open the report in a web browser")
    p.set_defaults(func=_commands().report)

    p = sub.add_parser("best", help="print or write the best committed version")
    p.add_argument("run_dir")
    p.add_argument("--output", help="write the entry file here (refuses to overwrite)")
    p.set_defaults(func=_commands().best)

    p = sub.add_parser("lineage", help="the ancestry as text, GraphML or a git repository")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=("text", "graphml", "git"), default="text")
    p.add_argument("--output", help="file (graphml) or new directory (git); default inside the run")
    p.set_defaults(func=_commands().lineage)

    p = sub.add_parser("show", help="one trial: hypothesis, diff, outcome, tokens, cost, transcript")
    p.add_argument("run_dir")
    p.add_argument("trial", type=_pos_int, help="the trial number (1 is the first seed; `evoagent status` lists them)")
    p.add_argument("--no-transcript", action="store_true")
    p.set_defaults(func=_commands().show)

    p = sub.add_parser("adapt", help="start a new run from another run's best version (e.g. for GQA)")
    p.add_argument("run_dir", help="the run to start from")
    p.add_argument("--suite", help="the new configuration suite")
    p.add_argument("--instruction", default="", help="what the agent should adapt the kernel to")
    p.add_argument("--version", help="a committed version id (default: the best)")
    p.add_argument("--run-dir", dest="new_run_dir", help="the new run's directory")
    p.add_argument("--trials", type=_nonneg_int)
    p.add_argument("--hours", type=_nonneg_float)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_commands().adapt)

    p = sub.add_parser("suite", help="one search per problem of a folder (kernel target), then a table")
    p.add_argument("target", choices=["kernel"], help="the built-in target")
    p.add_argument("folder", help="a folder of KernelBench-format problem files (e.g. examples/kernels)")
    p.add_argument("--trials", type=_nonneg_int, required=True, help="variation trials per problem")
    p.add_argument("--run-dir", help="the suite's folder (one run per problem; default runs/suite-<folder>); "
                                     "run again to continue it")
    p.add_argument("--shape", action="append", metavar="NAME=VALUE",
                   help="set a size constant in every problem that has it (repeatable)")
    p.add_argument("--no-compile", action="store_true", help="do not time the reference under torch.compile")
    p.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    p.set_defaults(func=_commands().suite)

    _add_part_commands(sub)
    return parser


def _add_part_commands(sub: Any) -> None:
    """Subcommands that belong to other parts: the attention and kernel targets and the knowledge base."""
    from .knowledge.cli import add_kb_parser
    from .targets.attention.cli import add_bench_parser, add_check_parser
    from .targets.kernel.cli import add_check_target

    add_check_parser(sub, more_targets=(add_check_target,))
    add_bench_parser(sub)
    add_kb_parser(sub)


def _commands() -> Any:
    from . import commands

    return commands


def _nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {text})")
    return value


def _pos_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {text})")
    return value


def _pos_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
    return value


def _nonneg_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {text})")
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
