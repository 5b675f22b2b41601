"""Reading the calibration's TOML files, with errors in the scenario loader's style.

Every problem in a targets or priors file is reported at once, one line each, as
``FILE: where.key: value VALUE: what is wrong, allowed: what is allowed``, where
``where`` names the entry (``target[2] "met_share"``) so that a user finds it in
a long file.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# A short name: a target's name becomes a column name and a key of pyabc's database.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class CalibrationFileError(Exception):
    """A targets or priors file that cannot be read or is not valid.

    ``problems`` holds one line per problem, each starting with the file name.
    """

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{path}: {len(problems)} problems\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(message)


class TargetsError(CalibrationFileError):
    """A calibration targets file that cannot be read or is not valid."""


class PriorsError(CalibrationFileError):
    """A priors file that cannot be read or is not valid."""


def read_toml(path: Path, error: type[CalibrationFileError], what: str) -> dict[str, Any]:
    """The parsed file; ``error`` (one problem) if it is missing, not UTF-8 or bad TOML."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(path, [f"{path}: no such {what} file"]) from None
    except IsADirectoryError:
        raise error(path, [f"{path}: is a directory, not a {what} file"]) from None
    except OSError as e:
        raise error(path, [f"{path}: cannot read: {e.strerror}"]) from None
    except UnicodeDecodeError as e:
        raise error(
            path, [f"{path}: byte {e.start}: not UTF-8 text (TOML files must be UTF-8)"]
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        match = re.fullmatch(r"(?s)(.*) \(at line (\d+), column (\d+)\)", str(e))
        where = f"line {match[2]}, column {match[3]}: invalid TOML: {match[1]}" if match else e
        raise error(path, [f"{path}: {where}"]) from None


def toml_type(value: Any) -> str:
    """The TOML name of a value's type, for 'wrong type' messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def show(value: Any) -> str:
    """A value as written in TOML, shortened."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "(a table)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def suggest_among(key: str, names: Iterable[str]) -> str:
    """'did you mean X?' for a near miss, else the list of valid names."""
    choices = list(names)
    if not choices:
        return "no keys are allowed here"
    close = difflib.get_close_matches(key, choices, n=3, cutoff=0.6)
    if close:
        best = difflib.SequenceMatcher(None, key, close[0]).ratio()
        close = [c for c in close if difflib.SequenceMatcher(None, key, c).ratio() >= best - 0.1]
        return "did you mean " + " or ".join(close) + "?"
    return "valid keys here: " + ", ".join(choices)


class Checker:
    """Collects the problems of one entry of a file, reading its keys with checks.

    Each getter returns the value if it is valid and records a problem (returning
    None) if not, so that all problems of a file are reported together.
    """

    def __init__(self, path: Path, where: str, table: Mapping[str, Any]) -> None:
        self.path = path
        self.where = where
        self.table = table
        self.problems: list[str] = []

    def problem(self, key: str | None, message: str) -> None:
        where = f"{self.where}.{key}" if key else self.where
        self.problems.append(f"{self.path}: {where}: {message}")

    def bad_value(self, key: str, value: Any, problem: str, allowed: str) -> None:
        self.problem(key, f"value {show(value)}: {problem}, allowed: {allowed}")

    def unknown_keys(self, allowed: Iterable[str]) -> None:
        names = list(allowed)
        for key, value in self.table.items():
            if key not in names:
                self.problem(key, f"value {show(value)}: unknown key; {suggest_among(key, names)}")

    def string(
        self, key: str, *, required: bool, allowed: str = "a non-empty string"
    ) -> str | None:
        value = self.table.get(key)
        if value is None:
            if required:
                self.problem(key, f"missing: required, allowed: {allowed}")
            return None
        if not isinstance(value, str):
            self.bad_value(key, value, f"wrong type ({toml_type(value)})", allowed)
            return None
        if not value.strip():
            self.bad_value(key, value, "empty", allowed)
            return None
        return value

    def number(
        self,
        key: str,
        *,
        required: bool,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        allowed: str | None = None,
    ) -> float | None:
        """A finite number (TOML integer or float) within [low, high]; ``low_open``
        makes the lower bound strict."""
        allowed = allowed or _range_text(low, high, low_open)
        value = self.table.get(key)
        if value is None:
            if required:
                self.problem(key, f"missing: required, allowed: {allowed}")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.bad_value(key, value, f"wrong type ({toml_type(value)})", allowed)
            return None
        number = float(value)
        if not math.isfinite(number):
            self.bad_value(key, value, "not a finite number", allowed)
            return None
        too_low = low is not None and (number <= low if low_open else number < low)
        if too_low or (high is not None and number > high):
            self.bad_value(key, value, "out of range", allowed)
            return None
        return number

    def integer(self, key: str, *, required: bool, low: int = 0) -> int | None:
        allowed = f"a whole number >= {low}"
        value = self.table.get(key)
        if value is None:
            if required:
                self.problem(key, f"missing: required, allowed: {allowed}")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad_value(key, value, f"wrong type ({toml_type(value)})", allowed)
            return None
        if value < low:
            self.bad_value(key, value, "out of range", allowed)
            return None
        return value

    def pair(self, key: str, *, required: bool) -> tuple[float, float] | None:
        """Two finite numbers ``[low, high]`` with low <= high."""
        allowed = "an array of two numbers [low, high], low <= high"
        value = self.table.get(key)
        if value is None:
            if required:
                self.problem(key, f"missing: required, allowed: {allowed}")
            return None
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            and all(math.isfinite(float(v)) for v in value)
        )
        if not ok:
            self.bad_value(key, value, "not two numbers", allowed)
            return None
        low, high = float(value[0]), float(value[1])
        if low > high:
            self.bad_value(key, value, "low is above high", allowed)
            return None
        return (low, high)


def _range_text(low: float | None, high: float | None, low_open: bool) -> str:
    if low is None and high is None:
        return "a number"
    if high is None:
        return f"a number {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"a number <= {high:g}"
    return f"a number from {low:g}{' (exclusive)' if low_open else ''} to {high:g}"
