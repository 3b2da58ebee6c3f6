"""`tolem provider …`: aggregator connections."""

import argparse
import os
import re
import sys
from ipaddress import ip_network
from typing import Any, Final

import asyncpg

from tolem.cli.common import (
    Commands,
    Parser,
    UsageError,
    amount,
    connected,
    currency_mismatch,
    emit,
    networks,
    text,
    zone,
)
from tolem.core.model import Provider, shown_settings
from tolem.db import providers as provider_db
from tolem.db.ledger import CurrencyMismatch
from tolem.protocols.passwords import hash_password
from tolem.settings import Settings

PROTOCOLS: Final = ("osmp", "payme", "click")
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
# The widest allow-list network that still names an operator's own range (one /8 is a whole
# former class A; a /32 is what a registry hands an IPv6 provider). Wider lets nearly anyone
# call, so it counts as no allow-list: credentials are then required.
NARROWEST_OPEN_PREFIX: Final = {4: 8, 6: 32}
_SECRETS_HELP: Final = (
    "Secrets: --password and --secret take the value on the command line, where `ps` and shell "
    "history show it; --password-stdin / --secret-stdin read it from the first line of stdin "
    "(... --password-stdin < keyfile), --password-env VAR / --secret-env VAR from the "
    "environment variable VAR."
)


# `tolem provider` has always said password/secret where the admin API says has_password/has_secret.
_CLI_KEYS: Final = {"has_password": "password", "has_secret": "secret"}


def provider_dict(provider: Provider) -> dict[str, Any]:
    """A provider as shown to operators: secrets only as present or absent."""
    return {_CLI_KEYS.get(key, key): value for key, value in shown_settings(provider).items()}


def _provider_text(d: dict[str, Any]) -> str:
    limits = f"{d['min_amount'] or '-'}..{d['max_amount'] or '-'} {d['currency']}"
    return (
        f"{d['name']}\t{d['protocol']}\t{'enabled' if d['enabled'] else 'disabled'}\t"
        f"{d['gateway']}\tips={','.join(d['allow_ips']) or 'any'}\t"
        f"password={'yes' if d['password'] else 'no'}\tsecret={'yes' if d['secret'] else 'no'}\t"
        f"limits={limits}"
    )


def _given_secret(args: argparse.Namespace, kind: str) -> str | None:
    """The password or secret from the command line, stdin or the environment, or None."""
    if getattr(args, f"{kind}_stdin"):
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise UsageError(f"--{kind}-stdin: no {kind} on stdin (one line expected)")
        return value
    variable: str | None = getattr(args, f"{kind}_env")
    if variable is not None:
        from_env = os.environ.get(variable)
        if from_env is None:
            raise UsageError(f"--{kind}-env: the environment variable {variable} is not set")
        return from_env
    given: str | None = getattr(args, kind)
    return given


def _provider_changes(args: argparse.Namespace) -> dict[str, Any]:
    if args.password_stdin and args.secret_stdin:
        raise UsageError("stdin holds one line: give --password-stdin or --secret-stdin, not both")
    changes: dict[str, Any] = {}
    if args.allow_ip is not None:
        changes["allow_ips"] = networks(args.allow_ip)
    if args.login is not None:
        changes["login"] = text(args.login, "login", 64)
    password = _given_secret(args, "password")
    if password is not None:
        changes["password_hash"] = hash_password(text(password, "password", 256))
    secret = _given_secret(args, "secret")
    if secret is not None:
        changes["secret"] = text(secret, "secret", 256)
    if args.service_id is not None:
        changes["service_id"] = text(args.service_id, "service id", 64)
    if args.min_amount is not None:
        changes["min_amount_minor"] = amount(args.min_amount)
    if args.max_amount is not None:
        changes["max_amount_minor"] = amount(args.max_amount)
    if args.timezone is not None:
        changes["timezone"] = zone(args.timezone)
    return changes


def _check_provider(protocol: str, merged: dict[str, Any]) -> None:
    credentials = bool(merged.get("password_hash") or merged.get("secret"))
    if not merged.get("allow_ips") and not credentials:
        raise UsageError("without --allow-ip a provider needs --password or --secret")
    for text_form in merged.get("allow_ips") or []:
        network = ip_network(text_form)
        limit = NARROWEST_OPEN_PREFIX[network.version]
        if network.prefixlen < limit and not credentials:
            raise UsageError(
                f"--allow-ip {network} is wider than /{limit}: nearly anyone could call; "
                "give a narrower network, or credentials (--password or --secret)"
            )
    if protocol == "payme" and not merged.get("password_hash"):
        raise UsageError("a payme provider needs --password (its merchant key)")
    if protocol == "click" and not (merged.get("secret") and merged.get("service_id")):
        raise UsageError("a click provider needs --secret and --service-id")
    low, high = merged.get("min_amount_minor"), merged.get("max_amount_minor")
    if low is not None and high is not None and low > high:
        raise UsageError("--min-amount is above --max-amount")


def _deployment_currency(args: argparse.Namespace, settings: Settings) -> str:
    """The provider's currency: the deployment's, which --currency may only confirm."""
    stated: str | None = args.currency
    if stated is None:
        return settings.currency
    if not _CURRENCY_RE.fullmatch(stated):
        raise UsageError(f"--currency must be an ISO 4217 code such as KGS, not {stated!r}")
    if stated != settings.currency:
        raise UsageError(
            f"provider currency {stated} is not the deployment's currency {settings.currency} "
            f"(TOLEM_CURRENCY): tolem never converts between currencies; an aggregator paying in "
            f"{stated} needs a deployment of its own, with its own database and TOLEM_CURRENCY={stated}"
        )
    return stated


def _same_currency(provider: Provider, settings: Settings) -> None:
    """Refuses to change or enable a provider of another currency than the deployment's."""
    if provider.currency != settings.currency:
        raise UsageError(
            f"provider {provider.name} takes {provider.currency}, TOLEM_CURRENCY is {settings.currency}: "
            f"run with TOLEM_CURRENCY={provider.currency} to change it (disable works under any currency)"
        )


async def cmd_provider_add(args: argparse.Namespace, settings: Settings) -> int:
    """Registers an aggregator."""
    if not _NAME_RE.fullmatch(args.name):
        raise UsageError("provider name: 1-32 of a-z 0-9 _ -, starting with a letter or digit")
    currency = _deployment_currency(args, settings)
    changes = _provider_changes(args)
    _check_provider(args.protocol, changes)
    async with connected(settings) as conn:
        try:
            provider = await provider_db.add(
                conn,
                name=args.name,
                protocol=args.protocol,
                currency=currency,
                allow_ips=changes.get("allow_ips", []),
                login=changes.get("login"),
                password_hash=changes.get("password_hash"),
                secret=changes.get("secret"),
                service_id=changes.get("service_id"),
                min_amount_minor=changes.get("min_amount_minor"),
                max_amount_minor=changes.get("max_amount_minor"),
                timezone=changes.get("timezone"),
            )
        except asyncpg.UniqueViolationError as exc:
            raise UsageError(
                f"provider {args.name!r} already exists; change it with `tolem provider set {args.name} …`"
            ) from exc
        except CurrencyMismatch as exc:
            raise currency_mismatch(exc, settings) from exc
    data = provider_dict(provider)
    emit(args, data, f"added provider {provider.name}; gateway URL path: /gw/{provider.name}")
    return 0


# What `provider set --clear` may take away, and the column each one empties.
_CLEARABLE: Final[dict[str, tuple[str, list[str] | None]]] = {
    "allow-ip": ("allow_ips", []),
    "login": ("login", None),
    "min-amount": ("min_amount_minor", None),
    "max-amount": ("max_amount_minor", None),
    "timezone": ("timezone", None),
}


async def cmd_provider_set(args: argparse.Namespace, settings: Settings) -> int:
    """Changes a provider's settings."""
    changes = _provider_changes(args)
    for option in args.clear or []:
        column, empty = _CLEARABLE[option]
        if column in changes:
            raise UsageError(f"--clear {option} and --{option} contradict each other")
        changes[column] = empty
    if not changes:
        raise UsageError("nothing to change")
    async with connected(settings) as conn:
        try:
            current = await provider_db.get(conn, args.name)
        except provider_db.ProviderNotFound as exc:
            raise UsageError(f"no provider named {args.name!r}") from exc
        _same_currency(current, settings)
        merged: dict[str, Any] = {
            "allow_ips": [str(n) for n in current.allow_ips],
            "password_hash": current.password_hash,
            "secret": current.secret,
            "service_id": current.service_id,
            "min_amount_minor": current.min_amount_minor,
            "max_amount_minor": current.max_amount_minor,
            **changes,
        }
        _check_provider(str(current.protocol), merged)
        provider = await provider_db.update(conn, args.name, changes)
    data = provider_dict(provider)
    emit(args, data, _provider_text(data))
    return 0


async def _set_enabled(args: argparse.Namespace, settings: Settings, enabled: bool) -> int:
    async with connected(settings) as conn:
        try:
            if enabled:
                _same_currency(await provider_db.get(conn, args.name), settings)
            provider = await provider_db.update(conn, args.name, {"enabled": enabled})
        except provider_db.ProviderNotFound as exc:
            raise UsageError(f"no provider named {args.name!r}") from exc
    data = provider_dict(provider)
    emit(args, data, f"{provider.name} {'enabled' if enabled else 'disabled'}")
    return 0


async def cmd_provider_enable(args: argparse.Namespace, settings: Settings) -> int:
    """Lets a provider move money again."""
    return await _set_enabled(args, settings, enabled=True)


async def cmd_provider_disable(args: argparse.Namespace, settings: Settings) -> int:
    """Stops a provider: its gateway answers 404."""
    return await _set_enabled(args, settings, enabled=False)


async def cmd_provider_remove(args: argparse.Namespace, settings: Settings) -> int:
    """Removes a provider that never received a call (a mistyped `provider add`)."""
    async with connected(settings) as conn:
        try:
            await provider_db.remove(conn, args.name)
        except provider_db.ProviderNotFound as exc:
            raise UsageError(f"no provider named {args.name!r}") from exc
        except provider_db.ProviderInUse as exc:
            raise UsageError(
                f"provider {args.name!r} has history ({exc}) and stays; `tolem provider disable "
                f"{args.name}` stops it"
            ) from exc
    emit(args, {"name": args.name, "removed": True}, f"removed provider {args.name}")
    return 0


async def cmd_provider_list(args: argparse.Namespace, settings: Settings) -> int:
    """Lists providers (never their secrets)."""
    async with connected(settings) as conn:
        providers = await provider_db.load_all(conn)
    data = [provider_dict(p) for p in providers.values()]
    emit(args, data, "\n".join(_provider_text(d) for d in data) or "no providers")
    return 0


def _secret_options(parser: argparse.ArgumentParser, kind: str, what: str) -> None:
    """--KIND VALUE, --KIND-stdin, --KIND-env VAR: one at most."""
    sources = parser.add_mutually_exclusive_group()
    sources.add_argument(f"--{kind}", help=f"{what}; visible in `ps`, prefer the two below")
    sources.add_argument(
        f"--{kind}-stdin", action="store_true", help=f"read the {kind} from the first line of stdin"
    )
    sources.add_argument(
        f"--{kind}-env", metavar="VAR", help=f"take the {kind} from environment variable VAR"
    )


def _provider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-ip",
        action="append",
        metavar="CIDR",
        help=(
            "network allowed to call; repeat for several (with set: the new list replaces the old); "
            "host bits must be zero (10.0.0.0/8, not 10.0.0.1/8); wider than /8 (IPv6 /32) only "
            "with credentials; without any, every address may call and credentials are required"
        ),
    )
    parser.add_argument("--login", help="HTTP Basic login the provider sends (Payme: default Paycom)")
    _secret_options(
        parser, "password", "HTTP Basic password, stored only as a hash (Payme: the merchant key; required)"
    )
    _secret_options(parser, "secret", "signature key (Click: the secret key; required)")
    parser.add_argument("--service-id", metavar="ID", help="our service id at the provider (Click: required)")
    parser.add_argument(
        "--min-amount",
        metavar="DEC",
        help="smallest amount accepted, in major units (som): 10.00; default no limit",
    )
    parser.add_argument(
        "--max-amount",
        metavar="DEC",
        help="largest amount accepted, in major units (som): 50000.00; default no limit",
    )
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        help="IANA zone of the provider's local timestamps and days (default TOLEM_TIMEZONE)",
    )


def register(commands: Commands, common: Parser) -> None:
    """`tolem provider add|list|set|enable|disable|remove`."""
    provider = commands.add_parser("provider", parents=[common], help="aggregator connections")
    p_cmds = provider.add_subparsers(dest="provider_command", required=True, parser_class=Parser)
    add = p_cmds.add_parser(
        "add",
        parents=[common],
        help="register an aggregator",
        description="Registers an aggregator; it calls tolem at /gw/NAME.",
        epilog=_SECRETS_HELP,
    )
    add.add_argument(
        "name", metavar="NAME", help="1-32 of a-z 0-9 _ -; becomes the gateway URL path /gw/NAME"
    )
    add.add_argument(
        "--protocol",
        required=True,
        choices=PROTOCOLS,
        help="how the aggregator speaks: osmp (QIWI and its clones, Elsom), payme, click",
    )
    add.add_argument(
        "--currency",
        metavar="ISO",
        help="the aggregator's currency; refused unless it is TOLEM_CURRENCY (tolem never converts)",
    )
    _provider_options(add)
    add.set_defaults(run=cmd_provider_add)
    p_cmds.add_parser(
        "list", parents=[common], help="list providers (secrets only as present or absent)"
    ).set_defaults(run=cmd_provider_list)
    set_ = p_cmds.add_parser(
        "set",
        parents=[common],
        help="change a provider's settings",
        description="Changes the given settings of a provider; the others stay as they are.",
        epilog=_SECRETS_HELP,
    )
    set_.add_argument("name", metavar="NAME", help="the provider, as in /gw/NAME")
    _provider_options(set_)
    set_.add_argument(
        "--clear",
        action="append",
        choices=sorted(_CLEARABLE),
        help="empty a setting (repeat for several): no allow-list, no login, no limit, the default zone",
    )
    set_.set_defaults(run=cmd_provider_set)
    verbs = (
        ("disable", cmd_provider_disable, "stop a provider: its gateway answers 404, no money moves"),
        ("enable", cmd_provider_enable, "let a disabled provider move money again"),
        ("remove", cmd_provider_remove, "delete a provider that never received a call (else: disable)"),
    )
    for verb, run, summary in verbs:
        sub = p_cmds.add_parser(verb, parents=[common], help=summary, description=f"{summary}.")
        sub.add_argument("name", metavar="NAME", help="the provider, as in /gw/NAME")
        sub.set_defaults(run=run)
