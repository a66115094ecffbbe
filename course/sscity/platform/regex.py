"""Regular expressions that cannot freeze the broker: ``q`` (``~=``, ``!~=``) and ``idPattern``.

Python's :mod:`re` backtracks, so a pattern such as ``(a+)+$`` takes time exponential in
the length of the value it is tried on (27 s for 29 characters, doubling per character),
and the broker answers one request at a time: one such query would stop every client of a
shared class server. Patterns are therefore compiled with RE2 (``google-re2``), whose
matching time is linear in the length of the text, whatever the pattern.

RE2 accepts the Python syntax students write (classes, ``(?P<name>...)``, ``(?i)``,
anchors, counted repetition up to 1000) but not the two features that need backtracking:
backreferences (``\\1``) and lookaround (``(?=...)``, ``(?!...)``, ``(?<=...)``,
``(?<!...)``). Such a pattern is refused with a 400 BadRequestData that names the
problem, never run with the backtracking engine. Smaller differences from Python's ``re``:
``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII-only (Python's also match other scripts' digits
and letters), ``$`` matches only at the very end (Python's also before a final newline), and
``\\Z`` is refused (write ``$``).
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

import re2

from .errors import bad_data

MAX_PATTERN_LENGTH = 1000  # characters; also bounds the memory of the compiled program
_MAX_PROGRAM_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern on the server's stderr
_OPTIONS.max_mem = _MAX_PROGRAM_MEMORY


class LinearPattern:
    """A compiled pattern with the one method the broker uses: :meth:`search` (a bool)."""

    __slots__ = ("pattern", "_compiled")

    def __init__(self, pattern: str, compiled):
        self.pattern = pattern
        self._compiled = compiled

    def search(self, text: str) -> bool:
        """True if the pattern matches anywhere in ``text`` (linear time in ``len(text)``)."""
        try:
            return self._compiled.search(text) is not None
        except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8: match its replacement
            text = text.encode("utf-8", "replace").decode("utf-8")
            return self._compiled.search(text) is not None

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r})"


@lru_cache(maxsize=256)
def compile_linear(pattern: str, what: str = "regular expression") -> LinearPattern:
    """Compile ``pattern`` for linear-time matching; 400 BadRequestData if it cannot be.

    Parameters
    ----------
    pattern : str
        A regular expression in Python syntax.
    what : str
        How the error message names the pattern (``"idPattern"``, ``"q regular expression"``).

    Raises
    ------
    NgsiError
        BadRequestData: not a regular expression at all, too long, not valid Unicode, or it
        uses a feature (backreference, lookaround) that only a backtracking engine has.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise bad_data(f"The {what} is {len(pattern)} characters long; the broker accepts at most "
                       f"{MAX_PATTERN_LENGTH}.")
    try:
        pattern.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_data(f"The {what} {pattern!r} contains a lone surrogate (such as \\ud800), which is "
                       "not a Unicode character; send valid UTF-8 text.") from None
    try:
        with warnings.catch_warnings():  # "possible nested set" and the like: not the client's news
            warnings.simplefilter("ignore")
            re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as err:
        raise bad_data(f"The {what} {pattern!r} is not a valid regular expression: {err}.") from None
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as err:
        reason = err.args[0].decode("utf-8", "replace") if err.args and isinstance(err.args[0], bytes) \
            else str(err)
        raise bad_data(
            f"The {what} {pattern!r}: this pattern uses a feature the broker's linear-time regex engine "
            f"does not support: {reason}. Backreferences (\\1) and lookaround ((?=...), (?!...), "
            "(?<=...), (?<!...)) are not available, nor \\Z (write $); rewrite the pattern "
            "without them.") from None
    return LinearPattern(pattern, compiled)
