"""`tolem … --help`: every command and every option explains itself."""

import argparse
from collections.abc import Iterator

from tolem.cli import build_parser
from tolem.cli.common import Parser
from tolem.cli.reconcile import _subparsers as reconcile_parsers

Tree = Iterator[tuple[str, argparse.ArgumentParser]]


def _parsers(parser: argparse.ArgumentParser, path: str = "tolem") -> Tree:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_and_command_has_help() -> None:
    """No option, argument or command of the tree is left without a line of help."""
    silent = []
    inner = [(f"tolem reconcile {name}", p) for name, p in reconcile_parsers(Parser(add_help=False)).items()]
    for path, parser in [*_parsers(build_parser()), *inner]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                described = {choice.dest for choice in action._choices_actions}
                silent += [f"{path} {name}" for name in action.choices if name not in described]
            elif not action.help:
                silent.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert silent == []


def _help(*words: str) -> str:
    parsers = dict(_parsers(build_parser()))
    return " ".join(parsers[" ".join(("tolem", *words))].format_help().split())


def test_help_says_what_operators_asked() -> None:
    """Help names the gateway path, major units, when credentials are needed, repeats, CSV columns
    and the environment variable behind each serve option."""
    add = _help("provider", "add")
    assert "/gw/NAME" in add
    assert "major units" in add
    assert "credentials are required" in add
    assert "repeat" in _help("account", "create")
    assert "payment_code, email, name (required), account_ref, services" in _help("account", "import")
    serve = _help("serve")
    assert all(variable in serve for variable in ("TOLEM_HOST", "TOLEM_PORT", "TOLEM_WORKERS"))
