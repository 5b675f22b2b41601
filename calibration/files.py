"""Reading the calibration's TOML files, with errors in the scenario loader's style.

Every problem in a targets or priors file is reported at once, one line each, as
``FILE: where.key: value VALUE: what is wrong, allowed: what is allowed``, where
``where`` names the entry (``target[2] "met_share"``) so that a user finds it in
a long file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from scenarios.inputs import InputError, show, suggest_among, toml_type

# A short name: a target's name becomes a column name and a key of pyabc's database.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class CalibrationFileError(InputError):
    """A targets or priors file that cannot be read or is not valid."""


class TargetsError(CalibrationFileError):
    """A calibration targets file that cannot be read or is not valid."""


class PriorsError(CalibrationFileError):
    """A priors file that cannot be read or is not valid."""


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
