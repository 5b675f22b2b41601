"""One way to read an input file and to report what is wrong with it.

Every input file of peersim (scenario files, calibration targets and priors, the
sensitivity spec) is TOML, read by ``read_toml`` and checked into a frozen object.
Whatever is wrong is reported at once, one line a problem, in one format::

    FILE: dotted.key: value VALUE: what is wrong, allowed: what is allowed

(a ``Problem``), raised together as one ``InputError``; several problems get a
header ``FILE: N problems`` and are indented below it. ``suggest_among`` finds the
closest valid names for a misspelt one and ``show`` displays a value as TOML
writes it.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulation.names import closest_names, suggest_among

__all__ = [
    "MAX_INPUT_BYTES",
    "NOT_GIVEN",
    "TOP_LEVEL_KEYS",
    "InputError",
    "Problem",
    "closest_names",
    "format_problem",
    "format_problems",
    "read_toml",
    "show",
    "suggest_among",
    "toml_type",
]

# Input files are hand-written and a few kilobytes; anything larger is a mistake
# (a data file named by accident) and is refused before it is read into memory.
MAX_INPUT_BYTES = 1024 * 1024
# Values longer than this are shortened in messages.
MAX_SHOWN_CHARS = 60
# The top-level keys each kind of input file may have (``read_toml``'s ``what``; the
# scenario loader adds "scenario"). A file with keys but none of these, nor any near
# miss of one, is not such a file at all (a secrets file named by mistake, say): it is
# refused in one line that names at most a few of its keys and none of its values.
TOP_LEVEL_KEYS: dict[str, frozenset[str]] = {
    "priors": frozenset({"description", "prior"}),
    "costs": frozenset(
        {"currency", "description", "peer_worker_hour", "coordinator_hour", "travel_hour"}
        | {"training_per_new_peer_worker", "readmission", "bed_day", "length_of_stay"}
    ),
    "targets": frozenset({"description", "target"}),
    "spec": frozenset(
        {"name", "description", "scenario", "outputs", "method", "replicates", "seed"}
        | {"parameters", "morris", "sobol", "priors"}
    ),
}
_KEYS_SHOWN = 5


class NotGiven:
    """The ``value`` of a problem that concerns no single value (a missing key)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file.

    ``key`` is the dotted key as the user wrote it (with an entry label such as
    ``target[2] 'met_share'`` in front where a file holds a list of entries), or
    ``""`` for the file as a whole; ``what`` says what is wrong; ``allowed`` what
    would be accepted; ``closest`` the valid names nearest a misspelt one.
    """

    file: Path | str | None
    key: str
    what: str
    value: Any = NOT_GIVEN
    allowed: str = ""
    closest: tuple[str, ...] = ()

    def __str__(self) -> str:
        return format_problem(self)


def format_problem(problem: Problem) -> str:
    """``FILE: key: value VALUE: what, allowed: ALLOWED; did you mean X?``."""
    parts = [str(p) for p in (problem.file, problem.key) if p is not None and p != ""]
    if problem.value is not NOT_GIVEN:
        parts.append(f"value {show(problem.value)}")
    text = ": ".join([*parts, problem.what])
    if problem.allowed:
        text += f", allowed: {problem.allowed}"
    if problem.closest:
        text += f"; did you mean {' or '.join(problem.closest)}?"
    return text


def format_problems(path: Path | str, problems: Sequence[str]) -> str:
    """One problem as its line; several under a ``FILE: N problems`` header."""
    if len(problems) == 1:
        return problems[0]
    return f"{path}: {len(problems)} problems\n" + "\n".join(f"  {p}" for p in problems)


class InputError(Exception):
    """An input file that cannot be read or does not say something valid.

    ``problems`` holds one line per problem, each starting with the file that set
    the offending value; a ``Problem`` is formatted by ``format_problem``, a string
    is taken as an already formatted line.
    """

    def __init__(self, path: Path | str, problems: Iterable[Problem | str]) -> None:
        self.path = Path(path)
        self.details: tuple[Problem | str, ...] = tuple(problems)
        self.problems: list[str] = [str(p) for p in self.details]
        super().__init__(format_problems(path, self.problems))


# --- reading -------------------------------------------------------------------------


def read_toml(
    path: Path, what: str, error: type[InputError] = InputError, limit: int = MAX_INPUT_BYTES
) -> dict[str, Any]:
    """The parsed TOML file at ``path``, a ``what`` file (``"scenario"``, ...).

    Raises ``error`` with one problem if the file is missing, not a regular file
    (a directory, a FIFO, a device: refused before it is opened, so that reading
    cannot block or run forever), larger than ``limit`` bytes, not UTF-8 (naming
    the first bad byte) or not valid TOML (naming the line and column).
    """

    def refuse(text: str) -> InputError:
        return error(path, [Problem(path, "", text)])

    _check_file(path, what, limit, refuse)
    data = _read_bytes(path, what, limit, refuse)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(
            path, [Problem(path, f"byte {e.start}", "not UTF-8 text (TOML files must be UTF-8)")]
        ) from None
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(path, [Problem(path, "", toml_error(str(e)))]) from None
    known = TOP_LEVEL_KEYS.get(what)
    if known is not None and parsed and not _any_known(parsed, known):
        raise refuse(f"not a {what} file: {_keys_text(parsed)} one a {what} file has")
    return parsed


def _any_known(data: Mapping[str, Any], known: frozenset[str]) -> bool:
    """Whether any top-level key is one of ``known`` or a near miss of one (a typo:
    ``extend`` for ``extends`` is a scenario file with a mistake, not another file)."""
    return any(key in known or closest_names(str(key), sorted(known)) for key in data)


def _keys_text(data: Mapping[str, Any]) -> str:
    """A few of a file's top-level keys, shortened: never its values."""
    names = [show(str(k))[1:-1] if len(str(k)) > 30 else str(k) for k in list(data)[:_KEYS_SHOWN]]
    if len(data) == 1:
        return f"its only top-level key ({names[0]}) is not"
    more = f" and {len(data) - _KEYS_SHOWN} more" if len(data) > _KEYS_SHOWN else ""
    return f"none of its top-level keys ({', '.join(names)}{more}) is"


def _check_file(path: Path, what: str, limit: int, refuse: Callable[[str], InputError]) -> None:
    """Raise ``refuse(...)`` unless ``path`` is a regular file of at most ``limit`` bytes:
    checked before it is opened, so that reading cannot block or run forever."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise refuse(f"no such {what} file") from None
    except OSError as e:
        raise refuse(f"cannot read: {e.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise refuse(f"is a directory, not a {what} file")
    if not stat.S_ISREG(info.st_mode):
        raise refuse(f"not a regular file (a pipe, device or socket), not a {what} file")
    if info.st_size > limit:
        raise refuse(f"{info.st_size} bytes: too large for a {what} file (at most {limit})")


def _read_bytes(path: Path, what: str, limit: int, refuse: Callable[[str], InputError]) -> bytes:
    """The content of the regular file ``path``; ``refuse(...)`` is raised if it is no
    longer a regular file or has grown past ``limit`` bytes since it was checked."""
    try:
        # O_NONBLOCK: should the file be swapped for a FIFO since the stat, opening
        # it does not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise refuse(f"not a regular file, not a {what} file")
            data = stream.read(limit + 1)
    except OSError as e:
        raise refuse(f"cannot read: {e.strerror}") from None
    if len(data) > limit:  # grew since the stat
        raise refuse(f"more than {limit} bytes: too large for a {what} file")
    return data


def toml_error(message: str) -> str:
    """``line L, column C: invalid TOML: WHAT`` from a ``TOMLDecodeError``'s text."""
    # Python 3.12's TOMLDecodeError carries its position only inside the message.
    match = re.fullmatch(r"(?s)(.*) \(at line (\d+), column (\d+)\)", message)
    if match:
        what, line, column = match.groups()
        return f"line {line}, column {column}: invalid TOML: {what}"
    return f"invalid TOML: {message}"


# --- names and values ----------------------------------------------------------------


def toml_type(value: Any) -> str:
    """The TOML kind of a parsed value, e.g. ``a string`` or ``an array``."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    for py_type, name in names.items():
        if isinstance(value, py_type):
            return name
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def show(value: Any, inline_tables: bool = False) -> str:
    """A value as short text, as TOML writes it: booleans ``true``/``false``, arrays
    element by element; a table as ``(a table)``, or with ``inline_tables`` as an
    inline table ``{ key = value }`` (for small tables whose content is the point)."""
    text = _toml_text(value, inline_tables)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _toml_text(value: Any, inline_tables: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        if not inline_tables:
            return "(a table)"
        items = (f"{k} = {_toml_text(v, True)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_text(v, inline_tables) for v in value) + "]"
    return repr(value)
