"""Helper package of the Tsukuba Super Science City course.

One subpackage per part of the course, each importable on its own:

- :mod:`sscity.data` -- dataset paths resolved through the installed package, checksums;
- :mod:`sscity.plotting` -- one figure style, a Japanese-capable font, a colour-blind-safe
  palette;
- :mod:`sscity.course` -- the instructor toolchain (release, verify, lint);
- :mod:`sscity.cli` -- the ``sscity`` command.
"""

__version__ = "0.1.0"
