"""A vectorised reader for the common shape of a CSV request: plain decimal numbers, commas and newlines.

`number_table(data, columns)` reads bytes made of lines of exactly `columns` comma-separated fields, each
field `-?digits[.digits]` (digits on either side of the point may be missing, not both), lines ending
in `\\n` or `\\r\\n`, into a float64 array, with numpy operations on the whole text instead of a Python
`float()` call per field. Anything else (spaces, signs other than a leading minus, exponents, `nan`,
blank lines, a wrong field count, non-ASCII bytes) returns None and the caller takes the general parser,
which accepts more and names the problem; so this reader may refuse a valid body but never accepts
one the general parser refuses.

The values are `float()`'s, bit for bit: a field of at most 15 digits is an integer M below 2**53 and a
power of ten 10**F with F <= 15, both exact doubles, and IEEE division rounds M / 10**F correctly, as
`float()` rounds the decimal (Clinger's fast path). A longer field is converted with `float()` itself.
"""

from __future__ import annotations

import numpy as np

# Digits of a field read by the exact integer-over-power-of-ten rule; longer fields go through float().
EXACT_DIGITS = 15
_POWERS = 10 ** np.arange(EXACT_DIGITS + 1, dtype=np.int64)
_DIGITS = b"0123456789"
_NEWLINE, _COMMA, _POINT, _MINUS = (ord(character) for character in "\n,.-")


def _fields(raw: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Start and end offsets of every field, or None unless each line holds `columns` non-empty fields."""
    newline = raw == _NEWLINE
    separators = np.flatnonzero(newline | (raw == _COMMA))
    if (len(separators) + 1) % columns:
        return None
    kinds = np.concatenate([newline[separators], [True]]).reshape(-1, columns)  # True: ends its line
    if not kinds[:, -1].all() or kinds[:, :-1].any():
        return None
    starts = np.concatenate([[0], separators + 1])
    ends = np.concatenate([separators, [len(raw)]])
    return (starts, ends) if (ends > starts).all() else None


def _signs_and_points(data: bytes, raw: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Which fields start with a minus and which hold a point; None for a minus elsewhere or two points."""
    minus = raw[starts] == _MINUS
    if int(minus.sum()) != data.count(b"-"):
        return None
    marks = data.translate(None, _DIGITS + b"-") + b"\n"  # each field reduced to its point, if any
    if b".." in marks:
        return None
    reduced = np.frombuffer(marks, dtype=np.uint8)
    before = np.flatnonzero(reduced != _POINT) - 1  # the byte before each field's separator
    return minus, (before >= 0) & (reduced[np.maximum(before, 0)] == _POINT)


def number_table(data: bytes, columns: int) -> np.ndarray | None:
    """The (rows, columns) float64 table of a body of plain decimal CSV lines, or None (see the module)."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    data = data.rstrip(b"\n")
    if not data or data.translate(None, _DIGITS + b".,-\n"):
        return None  # empty, or a byte other than a digit, point, minus, comma or newline
    raw = np.frombuffer(data, dtype=np.uint8)
    found = _fields(raw, columns)
    if found is None:
        return None
    starts, ends = found
    marks = _signs_and_points(data, raw, starts)
    if marks is None:
        return None
    minus, point = marks
    digits = ends - starts - minus - point
    if (digits == 0).any():
        return None
    values = _integers(data.translate(None, b".-"), digits)
    fraction = np.zeros(len(starts), dtype=np.int64)
    fraction[point] = ends[point] - 1 - (np.flatnonzero(raw == _POINT))
    values /= _POWERS[np.minimum(fraction, EXACT_DIGITS)]
    for index in np.flatnonzero(digits > EXACT_DIGITS).tolist():
        values[index] = abs(float(data[starts[index] : ends[index]]))
    values[minus] *= -1.0
    return values.reshape(-1, columns)


def _integers(cleaned: bytes, digits: np.ndarray) -> np.ndarray:
    """The digits of each field of `cleaned` (digits and separators only) read as one integer, as float64;
    exact for fields of up to `EXACT_DIGITS` digits.

    The integers are differences of one running int64 sum of digit x 10**place; the sum may wrap around
    on a long body, but a difference of wrapped sums is still exact when the true difference fits.
    """
    ends = np.cumsum(digits + 1) - 1  # each field's separator, in `cleaned` plus a final one
    value = np.frombuffer(cleaned, dtype=np.uint8) - np.uint8(48)
    place = np.repeat(ends, digits + 1)[: len(value)] - np.arange(1, len(value) + 1)
    terms = np.where(value < 10, value * _POWERS[np.minimum(place, EXACT_DIGITS)], 0)
    running = np.concatenate([[0], np.cumsum(terms)])
    return (running[ends] - running[ends - digits]).astype(np.float64)
