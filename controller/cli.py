"""The ``switchyard`` client commands: a thin layer over the HTTP API with readable tables.

``--api`` (or ``SWITCHYARD_API_URL``, default ``http://127.0.0.1:8080``) is the controller; the bearer
token comes from ``SWITCHYARD_API_TOKEN`` (never from the command line, where ``ps`` would show it).
Exit status: 0 done, 1 the API refused (its error is printed), 2 the API could not be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ApiClient", "add_client_commands", "format_table", "run_client"]


class ApiClient:
    """Blocking JSON client of the controller API."""

    def __init__(self, base: str, token: str, timeout: float = 60.0) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> tuple[int, bytes]:
        """Send one request; returns (status, body) for any HTTP status."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Rows as an aligned text table; ``columns`` are (key, heading)."""
    cells = [[heading for _, heading in columns]]
    cells += [["" if row.get(key) is None else str(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    )


def add_client_commands(commands: Any) -> None:
    """Add the client subcommands to an argparse subparsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api", help="controller URL (default: $SWITCHYARD_API_URL or http://127.0.0.1:8080)"
    )
    commands.add_parser("calls", parents=[common], help="list live calls")
    orig = commands.add_parser("originate", parents=[common], help="place a call (returns when answered)")
    orig.add_argument("target", choices=["user", "extension", "gateway"])
    orig.add_argument("destination")
    orig.add_argument("--gateway")
    orig.add_argument("--agent", help="stream the answered call to this agent")
    orig.add_argument("--caller-id", dest="caller_id_number")
    orig.add_argument("--timeout", dest="timeout_s", type=int, default=30)
    orig.add_argument("--node")
    hang = commands.add_parser("hangup", parents=[common], help="hang up a call")
    hang.add_argument("call_id")
    hang.add_argument("--cause", default="NORMAL_CLEARING")
    cdrs = commands.add_parser("cdrs", parents=[common], help="list call detail records")
    for name in ("since", "until", "number", "disposition", "status", "cursor"):
        cdrs.add_argument(f"--{name}")
    cdrs.add_argument("--limit", type=int, default=50)
    cdrs.add_argument("--csv", action="store_true", help="print CSV")
    commands.add_parser("nodes", parents=[common], help="FreeSWITCH nodes")
    commands.add_parser("reload", parents=[common], help="reload the routes")


def _request(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str, dict[str, Any] | None]:
    if args.command == "calls":
        return "GET", "/v1/calls", None
    if args.command == "nodes":
        return "GET", "/v1/nodes", None
    if args.command == "reload":
        return "POST", "/v1/routes/reload", None
    if args.command == "hangup":
        return "POST", f"/v1/calls/{urllib.parse.quote(args.call_id)}/hangup", {"cause": args.cause}
    if args.command == "originate":
        keys = ("target", "destination", "gateway", "agent", "caller_id_number", "timeout_s", "node")
        return "POST", "/v1/calls", {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    keys = ("since", "until", "number", "disposition", "status", "cursor", "limit")
    query = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if args.csv:
        query["format"] = "csv"
    return "GET", "/v1/cdrs?" + urllib.parse.urlencode(query), None


def _print(command: str, data: Any) -> None:
    if command == "calls":
        rows = [
            {**c, "caller": c["legs"][0]["caller_id_number"] if c["legs"] else "",
             "callee": c["legs"][0]["destination_number"] if c["legs"] else "",
             "state": c["legs"][0]["state"] if c["legs"] else "", "legs": len(c["legs"])}
            for c in data["items"]
        ]  # fmt: skip
        cols = [("id", "CALL"), ("node", "NODE"), ("state", "STATE"), ("caller", "FROM"), ("callee", "TO")]
        print(format_table(rows, [*cols, ("legs", "LEGS"), ("created_at", "CREATED")]))
    elif command == "cdrs":
        cols = [("call_id", "CALL"), ("created_at", "CREATED"), ("caller", "FROM"), ("callee", "TO")]
        cols += [("disposition", "DISPOSITION"), ("hangup_cause", "CAUSE"), ("billsec_s", "BILLSEC")]
        print(format_table(data["items"], [*cols, ("route", "ROUTE")]))
        if data.get("next_cursor"):
            print(f"more: --cursor {data['next_cursor']}")
    elif command == "nodes":
        cols = [("name", "NODE"), ("host", "HOST"), ("port", "PORT"), ("connected", "CONNECTED")]
        print(format_table(data["items"], [*cols, ("channels", "CHANNELS")]))
    elif command == "reload":
        print(f"routes reloaded: {len(data['routes'])} route(s)")
    else:
        print(format_table([data], [(k, k.upper()) for k in data if not isinstance(data[k], list | dict)]))


def run_client(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run one client command; print the result or the API's error."""
    base = args.api or environ.get("SWITCHYARD_API_URL", "http://127.0.0.1:8080")
    if not base.startswith(("http://", "https://")):
        print(f"switchyard: --api must be an http(s) URL, not {base!r}", file=sys.stderr)
        return 2
    client = ApiClient(base, environ.get("SWITCHYARD_API_TOKEN", ""))
    method, path, body = _request(args, environ)
    try:
        status, raw = client.request(method, path, body)
    except OSError as exc:
        print(f"switchyard: cannot reach {base}: {exc}", file=sys.stderr)
        return 2
    if status >= 400:
        try:
            error = json.loads(raw)["error"]
            print(
                f"switchyard: {status} {error['field'] or ''}: {error['reason']}".replace(" :", ":"),
                file=sys.stderr,
            )
        except (ValueError, KeyError, TypeError):
            print(f"switchyard: HTTP {status}: {raw[:200]!r}", file=sys.stderr)
        return 1
    if getattr(args, "csv", False):
        sys.stdout.write(raw.decode())
        return 0
    _print(args.command, json.loads(raw))
    return 0
