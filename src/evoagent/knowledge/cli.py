"""`evoagent kb`: search and read the knowledge base from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .base import KnowledgeBase, KnowledgeError


def add_kb_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers `kb search QUERY [-k N]`, `kb show DOC [SECTION]` and `kb list`; handlers return exit codes."""
    kb: argparse.ArgumentParser = subparsers.add_parser("kb", help="search and read the knowledge base")
    kb.add_argument("--path", action="append", default=[], metavar="DIR",
                    help="a folder of .md documents (or one .md file) to add; repeatable")
    kb.add_argument("--no-builtin", action="store_true", help="leave out the built-in attention documents")
    sub = kb.add_subparsers(metavar="ACTION")

    p = sub.add_parser("search", help="ranked sections for a query")
    p.add_argument("query", nargs="+", help="words to search for")
    p.add_argument("-k", type=_positive, default=5, help="how many sections (default 5)")
    p.set_defaults(func=run_search)

    p = sub.add_parser("show", help="print a document, or one of its sections")
    p.add_argument("doc", help="document name (as `kb list` or `kb search` shows it)")
    p.add_argument("section", nargs="?", help="section id or heading")
    p.set_defaults(func=run_show)

    p = sub.add_parser("list", help="documents, their sections and recipes")
    p.set_defaults(func=run_list)

    kb.set_defaults(func=lambda args: _usage(kb))
    return kb


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {text})")
    return value


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _knowledge(args: argparse.Namespace) -> KnowledgeBase:
    return KnowledgeBase(paths=args.path, builtin=not args.no_builtin)


def run_search(args: argparse.Namespace) -> int:
    query = " ".join(args.query)
    hits = _knowledge(args).search(query, k=args.k)
    if not hits:
        print(f"no section matches {query!r}")
        return 1
    for hit in hits:
        print(f"{hit.score:7.3f}  {hit.doc} {hit.section}  ({hit.title})")
        print(f"         {hit.snippet}\n")
    return 0


def run_show(args: argparse.Namespace) -> int:
    try:
        text = _knowledge(args).read(args.doc, args.section)
    except KnowledgeError as exc:
        print(f"evoagent kb: {exc.args[0]}", file=sys.stderr)
        return 2
    print(text.rstrip())
    return 0


def run_list(args: argparse.Namespace) -> int:
    kb = _knowledge(args)
    recipes: dict[tuple[str, str], list[str]] = {}
    for r in kb.recipes():
        recipes.setdefault((r.doc, r.section), []).append(r.id)
    for doc in kb.documents:
        print(f"{doc.name}: {doc.title}")
        for s in doc.sections:
            tag = f"  [recipes: {', '.join(recipes[(doc.name, s.id)])}]" if (doc.name, s.id) in recipes else ""
            print(f"    {s.id}{tag}")
    return 0
