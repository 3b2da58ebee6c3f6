"""Instructions per request: tolem and the bare reference under callgrind, same load, one run.

On a shared machine a server's CPU time per request moves by a sixth between runs, which hides
any change of a few per cent. callgrind counts the instructions the server executes instead:
the same code under the same load gives the same count within a few per cent, whatever else
the machine does. Each server runs under `valgrind --tool=callgrind` with counting off; wrk
warms it up, then counting is switched on for one measured wrk run of `--seconds`.

    python -m bench.instructions                      # OSMP check and pay, tolem and bare
    python -m bench.instructions --scenario check --tree before=/path/to/other/checkout

`--tree NAME=DIR` also measures tolem from another checkout's `src` (same database), for
comparing a change with what came before. A count is not a time: the regex engine's scanning
loops run many instructions per nanosecond, so regex-heavy code (the journal's masking of
answers) counts high against its share of the time. Read time from `python -m bench`.
"""

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Database, Server, free_port
from bench.load import SCENARIOS, run_wrk, wrk_script
from bench.run import Options
from bench.targets import gateway_targets, seeded_servers

_COLLECTED = re.compile(r"Collected : (\d+)")


@dataclass
class Count:
    """One server's measured run."""

    target: str
    scenario: str
    requests: int
    errors: int
    instructions: int

    @property
    def per_request(self) -> float:
        """Instructions per answered request."""
        return self.instructions / self.requests if self.requests else 0.0


def under_callgrind(server: Server) -> Server:
    """The same server command, run by callgrind with counting off until switched on."""
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--callgrind-out-file=/dev/null",
        *server.argv,
    ]
    port = free_port()
    env = dict(server.env)
    if "TOLEM_PORT" in env:
        env["TOLEM_PORT"] = str(port)
    else:
        argv[argv.index("--port") + 1] = str(port)
    # A provider reload every two seconds is a query and a rebuild that a fast run spreads thin.
    env["TOLEM_PROVIDER_CACHE_SECONDS"] = "3600"
    return Server(argv, env, port)


def _switch(pid: int, on: bool) -> None:
    subprocess.run(
        ["callgrind_control", "--instr=on" if on else "--instr=off", str(pid)],
        check=True,
        capture_output=True,
    )


def _stop(server: Server) -> int:
    """Stops the server and returns the instructions callgrind counted."""
    process = server.process
    assert process is not None
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    server.process = None
    found = _COLLECTED.findall(server.log_path.read_text(errors="replace"))
    if not found:
        raise RuntimeError(f"callgrind gave no count: {server.log_path.read_text()[-1500:]}")
    return int(found[-1])


async def count(server: Server, name: str, script: str, scenario: str, seconds: float) -> Count:
    """Warm-up, then one counted wrk run against a server started under callgrind."""
    await server.start(timeout=600)
    assert server.process is not None
    try:
        url = server.url + "/"
        # The warm-up also lets CPython's specializing interpreter settle on the hot code.
        await asyncio.to_thread(run_wrk, url, script, seconds=5, connections=64, server_pids=list, db_pids=[])
        _switch(server.process.pid, on=True)
        raw, *_ = await asyncio.to_thread(
            run_wrk, url, script, seconds=seconds, connections=64, server_pids=list, db_pids=[]
        )
        _switch(server.process.pid, on=False)
    except BaseException:
        server.kill()
        raise
    instructions = _stop(server)
    errors = raw["failed"] + raw["socket_errors"] + raw["status_errors"] + raw["timeouts"]
    return Count(name, scenario, raw["requests"], errors, instructions)


async def run(
    seconds: float, scenarios: list[str], trees: dict[str, Path], server_dsn: str | None
) -> list[Count]:
    """Every chosen scenario for the bare server, tolem and each extra tree, one after another."""
    database = await Database.create(server_dsn)
    counts: list[Count] = []
    try:
        options = Options()
        codes, tolem_server, bare_server = await seeded_servers(
            database.dsn, accounts=options.accounts, workers=options.workers, pool=options.pool
        )
        targets = {t.name: t for t in gateway_targets(tolem_server, bare_server, codes, "", database.dsn)}
        bare_target, tolem_target = targets["bare osmp pay"], targets["tolem osmp pay"]
        for name in scenarios:
            scenario = SCENARIOS[name]
            servers = [
                ("bare", under_callgrind(bare_server), bare_target),
                ("tolem", under_callgrind(tolem_server), tolem_target),
            ]
            for label, tree in trees.items():
                other = under_callgrind(tolem_server)
                other.env["PYTHONPATH"] = str(tree / "src")
                servers.append((f"tolem@{label}", other, tolem_target))
            for label, server, target in servers:
                script = wrk_script(
                    target.builder, scenario, target.codes, f"i{name}-{label}-{time.time_ns()}-"
                )
                counts.append(await count(server, label, script, name, seconds))
    finally:
        await database.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    """Prints instructions per request and tolem's ratio to the bare server's count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="counted seconds per server")
    parser.add_argument("--scenario", choices=["check", "pay"], action="append")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--dsn", help="use this PostgreSQL server (superuser DSN)")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    trees = {}
    for spec in args.tree:
        label, _, directory = spec.partition("=")
        trees[label] = Path(directory).resolve()
    counts = asyncio.run(run(args.seconds, args.scenario or ["check", "pay"], trees, args.dsn))
    print(f"# callgrind, {args.seconds:g} counted seconds per server, 64 connections, 1 worker")
    columns = ("scenario", "server", "requests", "errors", "k instr/req", "bare / it")
    print("{:9s} {:16s} {:>9s} {:>6s} {:>11s} {:>9s}".format(*columns))
    bare = {c.scenario: c.per_request for c in counts if c.target == "bare"}
    for c in counts:
        ratio = f"{bare[c.scenario] / c.per_request:.2f}" if c.target != "bare" and c.per_request else ""
        per_request = f"{c.per_request / 1000:.1f}"
        print(f"{c.scenario:9s} {c.target:16s} {c.requests:9d} {c.errors:6d} {per_request:>11s} {ratio:>9s}")
    if any(not c.requests for c in counts):
        # Switching counting on makes callgrind translate the code again: the first second
        # or two may answer nothing at all.
        print("a server answered nothing in the counted run: give it more --seconds", file=sys.stderr)
        return 1
    return 1 if any(c.errors for c in counts) else 0


if __name__ == "__main__":
    sys.exit(main())
