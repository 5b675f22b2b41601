"""``peersim app``: serve the interactive teaching app in a browser.

The app (``analysis.app.page``) is a Solara page; this command runs Solara's
server on it. Solara is imported only when the app is served, so the rest of
the command line works without the ``app`` extra.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import sys
from typing import Any

from analysis.cli.common import Command, UsageError, whole_number

APP_MODULE = "analysis.app.page"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

APP_DESCRIPTION = """\
Serve the teaching app: a page in the browser where students run the simulated
trial week by week, change each site's conditions (who employs the peer
workers, rural or urban, coordinator hours, team preparation, peer workers,
caseload cap), and follow engagement and fidelity per site, who is in contact
with whom, and the trial's numbers so far. Preset lessons load a configuration
and say what to watch for.

The app runs the same model as 'peersim run': seed S in the app is replicate 0
of 'peersim run --seed S'. It serves on this computer only (127.0.0.1) unless
--host says otherwise, and needs no internet connection. Stop it with Ctrl-C.
"""

APP_EPILOG = """\
examples:
  peersim app                          open http://127.0.0.1:8765 in a browser
  peersim app --port 9000
  peersim app --host 0.0.0.0           share with the classroom network (deliberately)
"""


COMMAND = Command(
    "app", "serve the interactive teaching app in a browser", APP_DESCRIPTION, APP_EPILOG
)


def register(commands: Any) -> None:
    """Add the ``app`` subcommand to ``peersim``'s subparsers."""
    parser = COMMAND.add(commands, serve)
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default: {DEFAULT_HOST}, this computer only); "
        "0.0.0.0 lets anyone who can reach this computer use the app",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port to listen on, 1-65535 (default: {DEFAULT_PORT})",
    )


def solara_command(host: str, port: int) -> list[str]:
    """The command that serves the app: Solara's server in production mode (no
    reloading, no debug pages), opening no browser and not asking PyPI for a newer
    Solara (the ``app`` extra pins it)."""
    return [
        sys.executable,
        "-m",
        "solara",
        "run",
        APP_MODULE,
        "--host",
        host,
        "--port",
        str(port),
        "--production",
        "--no-open",
        "--no-check-version",
    ]


# Solara's "This website runs on Solara" badge covers the page's corner (a projector's
# 1024x768 shows it over the numbers). Solara warns at every page load that the
# session cookie is not samesite=none, which needs https; on 127.0.0.1 over http
# the cookie is samesite=lax, which is what a local app wants.
QUIET = {
    "SOLARA_THEME_SHOW_BANNER": "False",
    "PYTHONWARNINGS": "ignore:Cookies with samesite=none require https",
}


def solara_environment() -> dict[str, str]:
    """This process's environment, with Solara's usage reporting, badge and cookie
    warning switched off."""
    return {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False", **QUIET}


def serve(args: argparse.Namespace, command_line: list[str]) -> int:
    if importlib.util.find_spec("solara") is None:
        raise UsageError(
            "the app needs the 'app' extra: install peersim with 'pip install peersim[app]' "
            "(in this repository, 'uv sync' installs it)"
        )
    if not _is_loopback(args.host):
        print(
            f"peersim: serving on {args.host}: anyone who can reach this computer on port "
            f"{args.port} can use the app",
            file=sys.stderr,
        )
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"peersim: the app will be at http://{shown}:{args.port}/ (Ctrl-C stops it)")
    sys.stdout.flush()
    # Replace this process with Solara's server, so that Ctrl-C and kill reach it
    # directly and no server is left behind.
    os.execve(sys.executable, solara_command(args.host, args.port), solara_environment())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port(text: str) -> int:
    value = whole_number(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {text!r}")
    return value
