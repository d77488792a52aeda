"""The one error tree of fetchpipe.

::

    FetchpipeError
     ├── ConfigError          bad settings or bad input, found before any request is sent
     │    ├── InputError      a request in the input cannot be read (line number in the message)
     │    └── SettingError    a setting's value cannot be used (names the setting: a file's line)
     ├── TransportError       one attempt failed on the wire; carries an ErrorKind
     ├── SinkError            a result could not be written to its destination
     └── ExecutorError        a shard task of a distributed run failed for good

Inside the engine a failed request is a *result value* (``Result.ok is False`` with an
``ErrorKind``), never an exception: one bad API never stops the others. ``TransportError`` only
travels between the transport and the engine, which turns it into a result.
"""

from __future__ import annotations

from fetchpipe._models import ErrorKind


class FetchpipeError(Exception):
    """Base class of every error fetchpipe raises."""


class ConfigError(FetchpipeError, ValueError):
    """A setting or an input is wrong. The message says what and how to fix it."""


class InputError(ConfigError):
    """A request in the input cannot be read."""


class SettingError(ConfigError):
    """A setting's value cannot be used, found when it is used (a file it names is missing).

    ``setting`` is its key (``ca_bundle``), ``name`` how the user wrote it (``--ca-bundle``,
    ``defaults.security.ca_bundle``), ``problem`` what is wrong (``PATH does not exist. HINT:
    ...``); the message is ``name problem``. A pipeline puts it at its line in the file.
    """

    def __init__(self, setting: str, name: str, problem: str) -> None:
        super().__init__(f"{name} {problem}")
        self.setting = setting
        self.name = name
        self.problem = problem


class SinkError(FetchpipeError):
    """Results could not be written to the destination."""


class ExecutorError(FetchpipeError):
    """A shard task of a distributed run failed for good (its worker kept dying, or it raised).

    The parts of the batches that finished are kept; the message says where, and how to merge
    them."""


class TransportError(FetchpipeError):
    """One attempt failed on the wire; ``kind`` says how, for the retry policy."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
