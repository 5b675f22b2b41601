"""The errors of the calibration's input files, read and reported as every input is
(``scenarios.inputs``).

Every problem in a targets or priors file is reported at once, one line each, as
``FILE: where.key: value VALUE: what is wrong, allowed: what is allowed``, where
``where`` names the entry (``target[2] 'met_share'``) so that a user finds it in
a long file.
"""

from __future__ import annotations

import re

from scenarios.inputs import InputError

# A short name: a target's name becomes a column name and a key of pyabc's database.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class CalibrationFileError(InputError):
    """A targets or priors file that cannot be read or is not valid."""


class TargetsError(CalibrationFileError):
    """A calibration targets file that cannot be read or is not valid."""


class PriorsError(CalibrationFileError):
    """A priors file that cannot be read or is not valid."""
