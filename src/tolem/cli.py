"""The `tolem` command. Bad input exits non-zero with one line on stderr and changes nothing."""

import argparse
import asyncio
import csv
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from pydantic import ValidationError

from tolem.core.codes import CodeShape, classify, normalize
from tolem.core.money import AmountError, format_amount, parse_amount
from tolem.database import resolve_database
from tolem.db import accounts as account_db
from tolem.db import audit as audit_db
from tolem.db import journal as journal_db
from tolem.db import migrate as migrate_db
from tolem.db import providers as provider_db
from tolem.db.embedded import EmbeddedUnavailable
from tolem.log import configure_logging, write_held_lines
from tolem.passwords import hash_password
from tolem.settings import Settings

PROTOCOLS: Final = ("osmp", "payme", "click")
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_EMAIL_RE: Final = re.compile(r"[^@\s]+@[^@\s]+")
_MAX_NAME: Final = 200
_MAX_SERVICE: Final = 253


class UsageError(Exception):
    """Bad input from the operator: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, default=_json_default, ensure_ascii=False))
    else:
        print(text)


def _amount(text: str) -> int:
    try:
        return parse_amount(text)
    except AmountError as exc:
        raise UsageError(f"bad amount {text!r}: {exc}") from exc


def _text(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not 0 < len(value) <= limit or not value.isprintable():
        raise UsageError(f"{what} must be 1 to {limit} printable characters")
    return value


def _email(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not _EMAIL_RE.fullmatch(value):
        raise UsageError(f"not an email address: {value!r}")
    return value


def _code(value: str) -> str:
    code = normalize(value)
    if classify(code) is CodeShape.MALFORMED:
        raise UsageError(f"malformed payment code: {value!r}")
    return code


def _networks(values: list[str] | None) -> list[str]:
    from ipaddress import ip_network  # noqa: PLC0415 - only this command needs it

    result = []
    for value in values or []:
        try:
            result.append(str(ip_network(value, strict=False)))
        except ValueError as exc:
            raise UsageError(f"not an IP network: {value!r}") from exc
    return result


def _zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"unknown time zone {value!r}") from exc
    return value


# --- commands ---------------------------------------------------------------------------------

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


async def _connect(settings: Settings) -> asyncpg.Connection:
    assert settings.database_url is not None
    return await asyncpg.connect(settings.database_url.get_secret_value())


async def _require_current(conn: asyncpg.Connection) -> None:
    todo = await migrate_db.pending(conn)
    if todo:
        raise UsageError(f"{len(todo)} migration(s) pending; run `tolem migrate` first")


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Applies pending migrations."""
    conn = await _connect(settings)
    try:
        applied = await migrate_db.migrate(conn)
    finally:
        await conn.close()
    text = "\n".join(f"applied {name}" for name in applied) or "nothing to apply"
    _emit(args, {"applied": applied}, text)
    return 0


def _provider_dict(provider: Any) -> dict[str, Any]:
    # Secrets are reported only as present or absent.
    return {
        "name": provider.name,
        "protocol": str(provider.protocol),
        "enabled": provider.enabled,
        "gateway": f"/gw/{provider.name}",
        "allow_ips": [str(n) for n in provider.allow_ips],
        "login": provider.login,
        "password": provider.password_hash is not None,
        "secret": provider.secret is not None,
        "service_id": provider.service_id,
        "min_amount": None if provider.min_amount_minor is None else format_amount(provider.min_amount_minor),
        "max_amount": None if provider.max_amount_minor is None else format_amount(provider.max_amount_minor),
        "currency": provider.currency,
        "timezone": provider.timezone,
    }


def _provider_text(d: dict[str, Any]) -> str:
    limits = f"{d['min_amount'] or '-'}..{d['max_amount'] or '-'} {d['currency']}"
    return (
        f"{d['name']}\t{d['protocol']}\t{'enabled' if d['enabled'] else 'disabled'}\t"
        f"{d['gateway']}\tips={','.join(d['allow_ips']) or 'any'}\t"
        f"password={'yes' if d['password'] else 'no'}\tsecret={'yes' if d['secret'] else 'no'}\t"
        f"limits={limits}"
    )


def _provider_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.allow_ip is not None:
        changes["allow_ips"] = _networks(args.allow_ip)
    if args.login is not None:
        changes["login"] = _text(args.login, "login", 64)
    if args.password is not None:
        changes["password_hash"] = hash_password(_text(args.password, "password", 256))
    if args.secret is not None:
        changes["secret"] = _text(args.secret, "secret", 256)
    if args.service_id is not None:
        changes["service_id"] = _text(args.service_id, "service id", 64)
    if args.min_amount is not None:
        changes["min_amount_minor"] = _amount(args.min_amount)
    if args.max_amount is not None:
        changes["max_amount_minor"] = _amount(args.max_amount)
    if args.timezone is not None:
        changes["timezone"] = _zone(args.timezone)
    return changes


def _check_provider(protocol: str, merged: dict[str, Any]) -> None:
    if not merged.get("allow_ips") and not merged.get("password_hash") and not merged.get("secret"):
        raise UsageError("without --allow-ip a provider needs --password or --secret")
    if protocol == "payme" and not merged.get("password_hash"):
        raise UsageError("a payme provider needs --password (its merchant key)")
    if protocol == "click" and not (merged.get("secret") and merged.get("service_id")):
        raise UsageError("a click provider needs --secret and --service-id")
    low, high = merged.get("min_amount_minor"), merged.get("max_amount_minor")
    if low is not None and high is not None and low > high:
        raise UsageError("--min-amount is above --max-amount")


async def cmd_provider_add(args: argparse.Namespace, settings: Settings) -> int:
    """Registers an aggregator."""
    if not _NAME_RE.fullmatch(args.name):
        raise UsageError("provider name: 1-32 of a-z 0-9 _ -, starting with a letter or digit")
    changes = _provider_changes(args)
    _check_provider(args.protocol, changes)
    conn = await _connect(settings)
    try:
        await _require_current(conn)
        try:
            provider = await provider_db.add(
                conn,
                name=args.name,
                protocol=args.protocol,
                currency=settings.currency,
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
            raise UsageError(f"provider {args.name!r} already exists") from exc
    finally:
        await conn.close()
    data = _provider_dict(provider)
    _emit(args, data, f"added provider {provider.name}; gateway URL path: /gw/{provider.name}")
    return 0


async def cmd_provider_set(args: argparse.Namespace, settings: Settings) -> int:
    """Changes a provider's settings."""
    changes = _provider_changes(args)
    if not changes:
        raise UsageError("nothing to change")
    conn = await _connect(settings)
    try:
        await _require_current(conn)
        try:
            current = await provider_db.get(conn, args.name)
        except provider_db.ProviderNotFound as exc:
            raise UsageError(f"no provider named {args.name!r}") from exc
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
    finally:
        await conn.close()
    data = _provider_dict(provider)
    _emit(args, data, _provider_text(data))
    return 0


async def _set_enabled(args: argparse.Namespace, settings: Settings, enabled: bool) -> int:
    conn = await _connect(settings)
    try:
        await _require_current(conn)
        try:
            provider = await provider_db.update(conn, args.name, {"enabled": enabled})
        except provider_db.ProviderNotFound as exc:
            raise UsageError(f"no provider named {args.name!r}") from exc
    finally:
        await conn.close()
    data = _provider_dict(provider)
    _emit(args, data, f"{provider.name} {'enabled' if enabled else 'disabled'}")
    return 0


async def cmd_provider_enable(args: argparse.Namespace, settings: Settings) -> int:
    """Lets a provider move money again."""
    return await _set_enabled(args, settings, enabled=True)


async def cmd_provider_disable(args: argparse.Namespace, settings: Settings) -> int:
    """Stops a provider: its gateway answers 404."""
    return await _set_enabled(args, settings, enabled=False)


async def cmd_provider_list(args: argparse.Namespace, settings: Settings) -> int:
    """Lists providers (never their secrets)."""
    conn = await _connect(settings)
    try:
        await _require_current(conn)
        providers = await provider_db.load_all(conn)
    finally:
        await conn.close()
    data = [_provider_dict(p) for p in providers.values()]
    _emit(args, data, "\n".join(_provider_text(d) for d in data) or "no providers")
    return 0


async def cmd_account_create(args: argparse.Namespace, settings: Settings) -> int:
    """Creates an account with its first payer."""
    email = _email(args.email)
    name = _text(args.name, "name", _MAX_NAME)
    services = [_text(s, "service", _MAX_SERVICE) for s in args.service or []]
    conn = await _connect(settings)
    try:
        await _require_current(conn)
        account_id, code = await account_db.create_account(
            conn,
            email=email,
            name=name,
            currency=settings.currency,
            services=services,
        )
    finally:
        await conn.close()
    _emit(
        args,
        {"account_id": account_id, "payment_code": code},
        f"account_id: {account_id}\npayment_code: {code}",
    )
    return 0


async def cmd_payer_add(args: argparse.Namespace, settings: Settings) -> int:
    """Adds a payer (a new payment code) to an account."""
    name = None if args.name is None else _text(args.name, "name", _MAX_NAME)
    conn = await _connect(settings)
    try:
        await _require_current(conn)
        try:
            code = await account_db.add_payer(conn, args.account_id, name)
        except account_db.AccountNotFound as exc:
            raise UsageError(f"no account {args.account_id}") from exc
    finally:
        await conn.close()
    _emit(args, {"account_id": args.account_id, "payment_code": code}, f"payment_code: {code}")
    return 0


def _account_text(view: account_db.AccountView) -> str:
    lines = [
        f"account {view.id}  {view.name} <{view.email}>  {view.status}",
        f"balance: {format_amount(view.balance_minor)} {view.currency}",
        "payers:",
        *(f"  {p.payment_code}  {p.name} ({p.origin})" for p in view.payers),
        f"services: {', '.join(view.services) or '-'}",
        "last payments:",
        *(
            f"  {p.created_at:%Y-%m-%d %H:%M:%S}  {p.provider}  {p.external_id}  "
            f"{format_amount(p.amount_minor)}  {p.state}"
            for p in view.payments
        ),
    ]
    if not view.payments:
        lines.append("  none")
    return "\n".join(lines)


async def cmd_account_show(args: argparse.Namespace, settings: Settings) -> int:
    """The support lookup: by id, code, email or service."""
    keys = [k for k in ("account_id", "code", "email", "service") if getattr(args, k) is not None]
    if len(keys) != 1:
        raise UsageError("give exactly one of ACCOUNT_ID, --code, --email, --service")
    code = None if args.code is None else _code(args.code)
    conn = await _connect(settings)
    try:
        await _require_current(conn)
        ids = await account_db.find_account_ids(
            conn,
            account_id=args.account_id,
            code=code,
            email=args.email,
            service=args.service,
        )
        views = [await account_db.load_account(conn, i) for i in ids]
    finally:
        await conn.close()
    if not views:
        raise UsageError("no matching account")
    _emit(args, [asdict(v) for v in views], "\n\n".join(_account_text(v) for v in views))
    return 0


async def _set_status(args: argparse.Namespace, settings: Settings, status: str) -> int:
    conn = await _connect(settings)
    try:
        await _require_current(conn)
        try:
            await account_db.set_status(conn, args.account_id, status)
        except account_db.AccountNotFound as exc:
            raise UsageError(f"no account {args.account_id}") from exc
    finally:
        await conn.close()
    _emit(args, {"account_id": args.account_id, "status": status}, f"account {args.account_id} {status}")
    return 0


async def cmd_account_block(args: argparse.Namespace, settings: Settings) -> int:
    """Blocks an account: its codes stop accepting payments."""
    return await _set_status(args, settings, "blocked")


async def cmd_account_unblock(args: argparse.Namespace, settings: Settings) -> int:
    """Unblocks an account."""
    return await _set_status(args, settings, "active")


@dataclass
class ImportReport:
    """What an import did, row by row."""

    created: int = 0
    skipped: int = 0
    refused: list[tuple[int, str]] | None = None


_IMPORT_REQUIRED: Final = ("payment_code", "email", "name")


def _import_row(row: dict[str, str | None]) -> tuple[str, str, str, str | None, list[str], str]:
    """Validates one CSV row; raises ValueError with the reason."""
    values = {k: (v or "").strip() for k, v in row.items() if k is not None}
    for field in _IMPORT_REQUIRED:
        if not values.get(field):
            raise ValueError(f"{field} is required")
    code = normalize(values["payment_code"])
    if classify(code) is CodeShape.MALFORMED:
        raise ValueError("malformed payment code")
    if len(values["email"]) > 254 or not _EMAIL_RE.fullmatch(values["email"]):
        raise ValueError("bad email")
    name = values["name"]
    if len(name) > _MAX_NAME or not name.isprintable():
        raise ValueError("bad name")
    ref = values.get("account_ref") or None
    if ref is not None and len(ref) > 64:
        raise ValueError("account_ref longer than 64 characters")
    services = [s.strip() for s in values.get("services", "").split(";") if s.strip()]
    if any(len(s) > _MAX_SERVICE for s in services):
        raise ValueError("service name too long")
    status = values.get("status") or "active"
    if status not in ("active", "blocked"):
        raise ValueError("status must be active or blocked")
    return code, values["email"], name, ref, services, status


async def _import_one(
    conn: asyncpg.Connection,
    settings: Settings,
    fields: tuple[str, str, str, str | None, list[str], str],
) -> bool:
    """Imports one payer; False when its code already exists (skipped)."""
    code, email, name, ref, services, status = fields
    async with conn.transaction():
        owner = await conn.fetchval("SELECT account_id FROM payers WHERE payment_code = $1", code)
        if owner is not None:
            return False
        account_id = None
        if ref is not None:
            account_id = await conn.fetchval("SELECT id FROM accounts WHERE external_ref = $1", ref)
        if account_id is None:
            await account_db.create_account(
                conn,
                email=email,
                name=name,
                currency=settings.currency,
                services=services,
                status=status,
                payment_code=code,
                external_ref=ref,
            )
        else:
            await account_db.add_payer(conn, account_id, name, payment_code=code)
            await account_db.add_services(conn, account_id, services)
    return True


async def cmd_account_import(args: argparse.Namespace, settings: Settings) -> int:
    """Imports accounts and payers with their existing codes; idempotent on the code."""
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")  # noqa: ASYNC240 - a CLI reading one small file
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {path}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [f for f in _IMPORT_REQUIRED if f not in (reader.fieldnames or [])]
    if missing:
        raise UsageError(f"CSV header lacks: {', '.join(missing)}")
    report = ImportReport(refused=[])
    assert report.refused is not None
    conn = await _connect(settings)
    try:
        await _require_current(conn)
        for row in reader:
            line = reader.line_num
            try:
                fields = _import_row(row)
                created = await _import_one(conn, settings, fields)
            except (ValueError, asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
                report.refused.append((line, str(exc).splitlines()[0]))
                continue
            if created:
                report.created += 1
            else:
                report.skipped += 1
    finally:
        await conn.close()
    data = {
        "created": report.created,
        "skipped": report.skipped,
        "refused": [{"line": n, "reason": r} for n, r in report.refused],
    }
    text_out = "\n".join(
        [
            f"created: {report.created}",
            f"skipped: {report.skipped}",
            f"refused: {len(report.refused)}",
            *(f"  line {n}: {r}" for n, r in report.refused),
        ]
    )
    _emit(args, data, text_out)
    return 0


async def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    """Verifies the ledger's invariants; exit 1 with the list of violations if any fail."""

    def progress(name: str, count: int, seconds: float) -> None:
        print(f"tolem: audit {name}: {count} violation(s) in {seconds:.2f}s", file=sys.stderr)

    conn = await _connect(settings)
    try:
        await _require_current(conn)
        found = await audit_db.audit(conn, progress)
    finally:
        await conn.close()
    data = {"ok": not found, "violations": [asdict(v) for v in found]}
    text = "\n".join(f"{v.check}\t{v.subject or '-'}\t{v.detail}" for v in found) or "ledger ok"
    _emit(args, data, text)
    return 1 if found else 0


def _moment(text: str | None, settings: Settings) -> datetime | None:
    from tolem.journal import parse_moment  # noqa: PLC0415 - keeps aiohttp out of other commands

    if text is None:
        return None
    try:
        return parse_moment(text, settings.timezone)
    except ValueError as exc:
        raise UsageError(f"not an ISO date or date-time: {text!r}") from exc


def _journal_dict(row: journal_db.JournalRow) -> dict[str, Any]:
    return asdict(row)


def _journal_text(row: journal_db.JournalRow, zone: ZoneInfo) -> str:
    # Local time of the deployment, as operators type --since/--until; the offset is shown.
    local = row.received_at.astimezone(zone)
    head = (
        f"{local:%Y-%m-%d %H:%M:%S.%f}"[:-3]
        + f"{local:%z}  #{row.id}  {row.provider}  {row.remote_addr or '-'}  {row.method} {row.command}  "
        f"txn={row.txn or '-'}  code={row.code_masked or '-'}  result={row.result or '-'}  "
        f"http={row.http_status}  {row.duration_us / 1000:.1f}ms"
    )
    lines = [head]
    if row.details:
        lines.append("    " + json.dumps(row.details, ensure_ascii=False))
    if row.response_body:
        lines.append("    " + row.response_body.replace("\n", "\n    "))
    return "\n".join(lines)


async def cmd_journal(args: argparse.Namespace, settings: Settings) -> int:
    """What aggregators asked and what we answered, newest first."""
    if args.limit < 1 or args.limit > 10_000:
        raise UsageError("--limit must be 1 to 10000")
    where = journal_db.JournalFilter(
        provider=args.provider,
        txn=args.txn,
        code=None if args.code is None else _code(args.code),
        since=_moment(args.since, settings),
        until=_moment(args.until, settings),
    )
    conn = await _connect(settings)
    try:
        await _require_current(conn)
        rows = await journal_db.search(conn, where, limit=args.limit)
    finally:
        await conn.close()
    _emit(
        args,
        [_journal_dict(r) for r in rows],
        "\n".join(_journal_text(r, ZoneInfo(settings.timezone)) for r in rows) or "no matching calls",
    )
    return 0


async def cmd_journal_archive(args: argparse.Namespace, settings: Settings) -> int:
    """Moves journal rows older than --before into a JSON-lines file, then deletes them."""
    before = _moment(args.before, settings)
    assert before is not None
    path = Path(args.to)
    try:
        out = path.open("x", encoding="utf-8")  # noqa: ASYNC230 - a CLI writing one file, closed below
    except FileExistsError as exc:
        raise UsageError(f"{path} exists; archives are never overwritten") from exc
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from exc

    def write(row: journal_db.JournalRow) -> None:
        out.write(json.dumps(_journal_dict(row), default=_json_default, ensure_ascii=False) + "\n")

    def sync() -> None:
        out.flush()
        os.fsync(out.fileno())

    conn = await _connect(settings)
    moved = 0
    try:
        await _require_current(conn)
        moved = await journal_db.archive(conn, before, write, sync)
    finally:
        await conn.close()
        out.close()
        if moved == 0:
            path.unlink(missing_ok=True)  # noqa: ASYNC240 - nothing was archived: no empty file
    _emit(
        args,
        {"archived": moved, "before": before, "file": str(path) if moved else None},
        f"archived {moved} journal row(s) received before {before.isoformat()}"
        + (f" into {path}" if moved else ""),
    )
    return 0


# --- serve ------------------------------------------------------------------------------------


def _serve_one(settings: Settings, reuse_port: bool) -> None:
    from aiohttp import web  # noqa: PLC0415 - keeps the other commands' start-up light

    from tolem.app import create_app  # noqa: PLC0415

    configure_logging(
        json=None if settings.log_format is None else settings.log_format == "json",
        level=settings.log_level,
    )
    loop: asyncio.AbstractEventLoop | None = None
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = None
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=None,
            reuse_port=reuse_port,
            print=None,
            loop=loop,
        )
    finally:
        write_held_lines()


def _serve(settings: Settings) -> int:
    if settings.workers == 1:
        _serve_one(settings, reuse_port=False)
        return 0
    # Each worker binds the same port with SO_REUSEPORT; the kernel spreads connections.
    # A scrape of /metrics lands on one worker; a shared directory lets it report them all.
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="tolem-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        return _run_workers(settings)
    finally:
        if metrics_dir is not None:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(settings: Settings) -> int:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_serve_one, args=(settings, True), name=f"tolem-worker-{i}")
        for i in range(settings.workers)
    ]
    for worker in workers:
        worker.start()

    def _forward(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    for worker in workers:
        worker.join()
    return max((w.exitcode or 0) for w in workers)


async def _check_serve(settings: Settings) -> None:
    conn = await _connect(settings)
    try:
        await _require_current(conn)
    finally:
        await conn.close()


# --- parser -----------------------------------------------------------------------------------


def _provider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-ip",
        action="append",
        metavar="CIDR",
        help="network allowed to call (repeat; with set: replaces the list)",
    )
    parser.add_argument("--login", help="HTTP Basic login expected")
    parser.add_argument("--password", help="HTTP Basic password (Payme: the merchant key)")
    parser.add_argument("--secret", help="signature key (Click)")
    parser.add_argument("--service-id", help="our service id at the provider (Click)")
    parser.add_argument("--min-amount", metavar="DEC", help="smallest amount, e.g. 10.00")
    parser.add_argument("--max-amount", metavar="DEC", help="largest amount, e.g. 50000.00")
    parser.add_argument("--timezone", help="zone of the provider's local timestamps")


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - one flat command table
    """The whole command tree."""
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    parser = _Parser(prog="tolem", description=__doc__, parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("audit", parents=[common], help="verify the ledger's invariants").set_defaults(
        run=cmd_audit
    )
    commands.add_parser("migrate", parents=[common], help="apply pending migrations").set_defaults(
        run=cmd_migrate
    )

    serve = commands.add_parser("serve", parents=[common], help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(run=None)

    provider = commands.add_parser("provider", parents=[common], help="aggregator connections")
    p_cmds = provider.add_subparsers(dest="provider_command", required=True, parser_class=_Parser)
    add = p_cmds.add_parser("add", parents=[common])
    add.add_argument("name")
    add.add_argument("--protocol", required=True, choices=PROTOCOLS)
    _provider_options(add)
    add.set_defaults(run=cmd_provider_add)
    p_cmds.add_parser("list", parents=[common]).set_defaults(run=cmd_provider_list)
    set_ = p_cmds.add_parser("set", parents=[common])
    set_.add_argument("name")
    _provider_options(set_)
    set_.set_defaults(run=cmd_provider_set)
    for verb, run in (("disable", cmd_provider_disable), ("enable", cmd_provider_enable)):
        sub = p_cmds.add_parser(verb, parents=[common])
        sub.add_argument("name")
        sub.set_defaults(run=run)

    account = commands.add_parser("account", parents=[common], help="customer accounts")
    a_cmds = account.add_subparsers(dest="account_command", required=True, parser_class=_Parser)
    create = a_cmds.add_parser("create", parents=[common])
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--service", action="append")
    create.set_defaults(run=cmd_account_create)
    show = a_cmds.add_parser("show", parents=[common])
    show.add_argument("account_id", nargs="?", type=int)
    show.add_argument("--code")
    show.add_argument("--email")
    show.add_argument("--service")
    show.set_defaults(run=cmd_account_show)
    for verb, run in (("block", cmd_account_block), ("unblock", cmd_account_unblock)):
        sub = a_cmds.add_parser(verb, parents=[common])
        sub.add_argument("account_id", type=int)
        sub.set_defaults(run=run)
    imp = a_cmds.add_parser("import", parents=[common])
    imp.add_argument("file")
    imp.set_defaults(run=cmd_account_import)

    journal = commands.add_parser(
        "journal", parents=[common], help="what aggregators asked and what we answered"
    )
    journal.add_argument("--provider")
    journal.add_argument("--txn", help="the provider's transaction id")
    journal.add_argument("--code", help="payment code (matched by its masked form)")
    journal.add_argument("--since", help="ISO date or date-time (zone: TOLEM_TIMEZONE unless given)")
    journal.add_argument("--until", help="ISO date or date-time, exclusive")
    journal.add_argument("--limit", type=int, default=100)
    journal.set_defaults(run=cmd_journal)
    j_cmds = journal.add_subparsers(dest="journal_command", parser_class=_Parser)
    archive = j_cmds.add_parser("archive", parents=[common])
    archive.add_argument("--before", required=True, help="ISO date or date-time, exclusive")
    archive.add_argument("--to", required=True, metavar="FILE.jsonl", help="new file to write")
    archive.set_defaults(run=cmd_journal_archive)

    payer = commands.add_parser("payer", parents=[common], help="payers and their codes")
    pay_cmds = payer.add_subparsers(dest="payer_command", required=True, parser_class=_Parser)
    padd = pay_cmds.add_parser("add", parents=[common])
    padd.add_argument("account_id", type=int)
    padd.add_argument("--name")
    padd.set_defaults(run=cmd_payer_add)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in ("host", "port", "workers")}
    settings = Settings()
    update = {k: v for k, v in overrides.items() if v is not None}
    return Settings.model_validate({**settings.model_dump(), **update}) if update else settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tolem` console script."""
    try:
        args = build_parser().parse_args(argv)
        settings = _settings(args)
        serving = args.command == "serve"
        configure_logging(
            json=None if settings.log_format is None else settings.log_format == "json",
            level=settings.log_level,
            to_stderr=not serving,
        )
        settings = resolve_database(settings)
        if serving:
            asyncio.run(_check_serve(settings))
            return _serve(settings)
        run: Command = args.run
        return asyncio.run(run(args, settings))
    except UsageError as exc:
        print(f"tolem: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"tolem: error: configuration {where}: {first['msg']}", file=sys.stderr)
        return 2
    except (EmbeddedUnavailable, migrate_db.MigrationError) as exc:
        print(f"tolem: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(
            f"tolem: error: database: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            file=sys.stderr,
        )
        return 1
