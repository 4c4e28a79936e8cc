"""Suites: what one ``run_all.py`` command runs into a results folder, each one registration.

A suite is a module in this package that calls :func:`register_suite` with its name, a one-line
description, its own command-line options (``add_options``) and ``run(command)``, which plans its
runs (all at once, as the plain grid does, or from the records it reads back, as the memory sweep
does), runs them through :class:`bench.suites.command.Command`'s shared steps, and returns the
exit code. Modules here are discovered, so a new suite is one new file; ``--suite`` choices and
help, ``--list-suites``, and the refusal of one suite's options under another come from the
registry. The report sections a suite's runs bring are registered on the reports side (a report
is a function of the folder, whichever command wrote it); ``report_sections`` names them for
``--list-suites``.

    >>> from bench.suites import list_suites, suite_info
    >>> suite_info(list_suites()[0]).default
    True
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.suites.command import Command

__all__ = ["Suite", "SuiteOption", "UnknownSuiteError", "default_suite", "list_suites",
           "register_suite", "suite_info"]


class UnknownSuiteError(KeyError):
    """A suite name that is not registered; the message lists what is and the closest match."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class SuiteOption:
    """One command-line option a suite added: its destination, its flag and its default."""

    dest: str
    flag: str
    default: Any


@dataclass(frozen=True)
class Suite:
    """A registered suite (see the module docstring)."""

    name: str
    description: str
    run: Callable[[Command], int]
    add_options: Callable[[argparse._ArgumentGroup], None] | None = None
    report_sections: tuple[str, ...] = ()
    #: The manifest key the suite keeps its own summary under (carried over by later commands).
    manifest_entry: str | None = None
    #: The suite ``run_all.py`` runs without ``--suite`` (exactly one).
    default: bool = False
    #: The module that registered it (the only place its name may be written: a test checks).
    module: str = ""
    options: tuple[SuiteOption, ...] = field(default=(), compare=False)


_SUITES: dict[str, Suite] = {}


def register_suite(
    name: str, *, description: str, run: Callable[[Command], int],
    add_options: Callable[[argparse._ArgumentGroup], None] | None = None,
    report_sections: Sequence[str] = (), manifest_entry: str | None = None, default: bool = False,
) -> Suite:
    """Register a suite; a duplicate name, a second default or a multi-line description raise."""
    if name in _SUITES:
        raise ValueError(f"suite {name!r} is already registered (by {_SUITES[name].module})")
    if not name.isidentifier():
        raise ValueError(f"suite name {name!r} must be an identifier (it is a --suite value)")
    if not description.strip() or "\n" in description:
        raise ValueError(f"suite {name!r}: the description is one line (--list-suites)")
    if default and any(s.default for s in _SUITES.values()):
        raise ValueError(f"suite {name!r}: {default_suite().name!r} is the default already")
    caller = inspect.stack()[1].frame.f_globals.get("__name__", "")
    suite = Suite(name, description, run, add_options, tuple(report_sections), manifest_entry,
                  default, caller)
    _SUITES[name] = suite
    return suite


def unregister_suite(name: str) -> None:
    """Remove a suite (tests register throwaway ones)."""
    _SUITES.pop(name, None)


def list_suites() -> list[str]:
    """Registered suite names, the default first, then in registration order."""
    return sorted(_SUITES, key=lambda name: not _SUITES[name].default)


def suite_info(name: str) -> Suite:
    """The registered suite ``name``; an unknown name raises :class:`UnknownSuiteError`."""
    if name not in _SUITES:
        close = difflib.get_close_matches(name, list(_SUITES), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise UnknownSuiteError(f"unknown suite {name!r}{hint} (registered: "
                                f"{', '.join(list_suites())})")
    return _SUITES[name]


def default_suite() -> Suite:
    """The suite registered with ``default=True``."""
    return next(s for s in _SUITES.values() if s.default)


def add_suite_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--suite`` (choices and help from the registry) and each suite's own options, in an
    argument group of its own, recording which options are whose."""
    parser.add_argument(
        "--suite", choices=list_suites(), default=default_suite().name,
        help="what to run: " + "; ".join(f"{s.name}: {s.description}" for s in _SUITES.values())
        + " (see --list-suites)",
    )
    for name in list_suites():
        suite = _SUITES[name]
        if suite.add_options is None:
            continue
        group = parser.add_argument_group(f"options of --suite {name}")
        suite.add_options(group)
        options = tuple(SuiteOption(a.dest, a.option_strings[0], a.default)
                        for a in group._group_actions)
        _SUITES[name] = Suite(**{**suite.__dict__, "options": options})


def check_suite_options(args: argparse.Namespace) -> None:
    """Refuse an option of another suite than ``args.suite`` (one line: :class:`ValueError`)."""
    for suite in _SUITES.values():
        for option in suite.options:
            if suite.name != args.suite and getattr(args, option.dest, option.default) != option.default:
                raise ValueError(f"{option.flag} is an option of --suite {suite.name}; add "
                                 f"--suite {suite.name} or drop {option.flag}")


def list_text() -> str:
    """``--list-suites``: each suite with its description, options and report sections."""
    lines = []
    for name in list_suites():
        suite = _SUITES[name]
        text = textwrap.wrap(suite.description, 84)
        lines.append(f"{'*' if suite.default else ' '} {name:<12} {text[0]}")
        lines += [f"  {'':<12} {more}" for more in text[1:]]
        if suite.options:
            lines.append(f"  {'':<12} options: {', '.join(o.flag for o in suite.options)}")
        if suite.report_sections:
            lines.append(f"  {'':<12} report: {', '.join(suite.report_sections)}")
    lines.append("(* = without --suite)")
    return "\n".join(lines)


def _import_suites() -> None:
    """Import every module of this package (each registers its suite)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_suites()
