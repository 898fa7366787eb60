"""The commands' console: TensorFlow's native log lines stay off it unless `--verbose` is given.

TensorFlow's C++ code logs through absl before anything initialises absl's logging,
so every line goes to file descriptor 2 whatever `TF_CPP_MIN_LOG_LEVEL` says (the
`I0000 ... oneDNN custom operations are on` lines, at every start; `E0000 ... failed
call to cuInit` on every machine without a GPU; `E0000 ... oneDNN supports DT_HALF`
during evaluation). No switch reaches them from Python, so a command routes
descriptor 2 through a pipe and drops exactly those lines; Python's own output
bypasses the pipe. The few warnings libraries log about their own internals
(LIBRARY_NOTICES: Beam's missing GCP extra, TFDS calling its own deprecated API) are
dropped by a logging filter; every other warning still shows. Library code never
calls this: only a command's process owns its console (a test that calls `main`
in-process keeps pytest's capture).
"""

from __future__ import annotations

import argparse
import atexit
import faulthandler
import functools
import io
import logging
import os
import re
import select
import sys
import threading
from collections.abc import Callable, Sequence

from brainage_tf.errors import one_line

VERBOSE_FLAG = "--verbose"
# Set by a verbose command for its child processes that are commands of their own (pipeline components).
VERBOSE_ENV = "BRAINAGE_TF_VERBOSE"
VERBOSE_HELP = "Show TensorFlow's native log lines, and Beam's and TFDS's INFO logs while a dataset is built."
# absl's prefix (severity I/W/E, date, time or 00:00:<epoch seconds>, thread, file:line]) and
# the two lines of its start-up that carry no prefix; a fatal (F) line is never dropped.
NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWE]\d{4} [\d:.]+ +\d+ [^\]\s]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    rb"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$)"
)
# Warnings libraries log about their own internals, by logger: nothing a user can act on.
LIBRARY_NOTICES = {
    # Beam's import, without the GCP extra this package does not use.
    "root": ("apitools not found, and bigquery client libraries are not available",),
    # TFDS's own decoder reads its deprecated FeatureConnector.dtype (tensor_feature.decode_example).
    "absl": ("`FeatureConnector.dtype` is deprecated.",),
}
# Start-up lines of Beam's worker processes, which print to the inherited descriptor before
# their logs go to the runner (the DirectRunner's multi-processing mode starts them).
WORKER_NOTICES = (
    b"WARNING:root:apitools not found, and bigquery client libraries are not available",
    b"INFO:__main__:Logging handler created.",
    b"WARNING:__main__:No semi_persistent_directory found",
    b"WARNING:apache_beam.options.pipeline_options:Discarding unparseable args:",
)
# The module the `tfds` command runs (`tfds build`); imported in no other process.
TFDS_COMMAND_MODULE = "tensorflow_datasets.scripts.cli.main"
# A partial line waits this long for its end before it is shown as it is (a prompt, a bar).
_PARTIAL_LINE_SECONDS = 0.2
# Written at exit after the process's last output; the filter shows what came before, then stops.
_END_MARK = b"\0brainage_tf.console: end\0"
# At exit, the longest wait for the filter to show the process's last lines (a loaded machine).
_END_SECONDS = 30.0


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """Adds the `--verbose` flag that `run_command` reads."""
    parser.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)


def entry_point(main: Callable[[], int]) -> Callable[[], int]:
    """A command's console entry point: `main` run by `run_command` (for `python -m` and console scripts)."""
    return functools.partial(run_command, main)


def run_command(main: Callable[[], int], argv: Sequence[str] | None = None) -> int:
    """Runs a command's `main` with native log lines filtered, unless `--verbose` is among the arguments.

    Args:
        main: The command's entry point, reading sys.argv; returns the exit code.
        argv: The arguments to look for `--verbose` in (default sys.argv[1:]).

    Returns:
        `main`'s exit code.
    """
    if VERBOSE_FLAG in (sys.argv[1:] if argv is None else argv):
        os.environ[VERBOSE_ENV] = "1"
    else:
        quiet_console()
    return main()


def brief_errors_under_tfds(error_types: tuple[type[BaseException], ...]) -> None:
    """Under the `tfds` command, reports an uncaught error of `error_types` in one line, with no traceback.

    `tfds build` has no handler of its own: whatever a builder raises reaches the user as a
    traceback, also a cohort's bad input that the builder names in one line. A builder calls
    this; it sets the hook only in the `tfds` command's process (its CLI module is loaded), so
    a library caller or a test keeps the exception, and every other error keeps Python's report.
    The exit status stays 1.

    Args:
        error_types: The package's errors of bad input a build can raise.
    """
    if TFDS_COMMAND_MODULE not in sys.modules or isinstance(sys.excepthook, _BriefErrors):
        return
    sys.excepthook = _BriefErrors(error_types, sys.excepthook)


class _BriefErrors:
    """An excepthook printing `<command>: error: <one line>` for some errors, delegating the rest."""

    def __init__(self, error_types: tuple[type[BaseException], ...], previous: Callable) -> None:
        self.error_types = error_types
        self.previous = previous

    def __call__(self, kind: type[BaseException], error: BaseException, trace) -> None:
        if not issubclass(kind, self.error_types):
            self.previous(kind, error, trace)
            return
        print(f"{os.path.basename(sys.argv[0])}: error: {one_line(error)}", file=sys.stderr)


def component_console() -> None:
    """A pipeline component's process: native log lines filtered, unless its pipeline run is verbose."""
    if not os.environ.get(VERBOSE_ENV):
        quiet_console()


def quiet_console() -> None:
    """Drops TensorFlow's native log lines and the LIBRARY_NOTICES; everything else still shows."""
    for logger, messages in LIBRARY_NOTICES.items():
        logging.getLogger(None if logger == "root" else logger).addFilter(_NoticeFilter(messages))
    filter_native_log_lines()


class _NoticeFilter(logging.Filter):
    """Drops the log records whose message starts with one of the given texts."""

    def __init__(self, messages: Sequence[str]):
        super().__init__()
        self.messages = tuple(messages)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.messages)


def filter_native_log_lines() -> None:
    """Routes file descriptor 2 through a filter thread that drops TensorFlow's native log lines.

    sys.stderr is rebound to the real stderr, so Python's messages, tracebacks and bars
    bypass the filter; child processes inherit the filtered descriptor. A fatal signal
    still prints the Python traceback (faulthandler, on the real stderr). Does nothing
    when stderr is not a file descriptor.
    """
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, AttributeError, ValueError):
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)  # the descriptor children inherit; write_end stays private to mark the end
    sys.stderr = io.TextIOWrapper(
        io.FileIO(real, "w", closefd=False), encoding=sys.stderr.encoding, errors="backslashreplace",
        line_buffering=True,  # one write per line: the filter thread interleaves between lines only
    )  # fmt: skip
    faulthandler.enable(file=sys.stderr)
    thread = threading.Thread(target=_forward, args=(read_end, real), name="native-log-filter", daemon=True)
    thread.start()

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(real, 2)
        # Everything this process wrote before the mark is shown before the thread stops, however
        # slowly it is scheduled; a child still holding the pipe cannot keep the process alive.
        os.write(write_end, _END_MARK)
        thread.join(timeout=_END_SECONDS)

    atexit.register(restore)


def _forward(read_end: int, real: int) -> None:
    """Copies lines from the pipe to the real stderr, all but the native log lines, up to the end mark."""
    pending = b""
    while True:
        ready, _, _ = select.select([read_end], [], [], _PARTIAL_LINE_SECONDS if pending else None)
        if not ready:
            _write_all(real, pending)
            pending = b""
            continue
        chunk = os.read(read_end, 65536)
        pending += chunk
        end = pending.find(_END_MARK)
        if not chunk or end >= 0:
            break
        *lines, pending = pending.split(b"\n")
        _write_all(real, _kept(lines))
    *lines, last = (pending if end < 0 else pending[:end]).split(b"\n")
    _write_all(real, _kept(lines) + (b"" if _dropped(last) else last))


def _kept(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines if not _dropped(line))


def _dropped(line: bytes) -> bool:
    return bool(NATIVE_LOG_LINE.match(line)) or line.startswith(WORKER_NOTICES)


def _write_all(fd: int, data: bytes) -> None:
    """Writes whole lines in pieces of at most PIPE_BUF bytes, each of which a pipe takes atomically.

    One larger write into a pipe may be split wherever the reader drains it, and Python's own
    lines, written straight to the real stderr meanwhile, then land inside a forwarded line.
    """
    while data:
        small = len(data) <= select.PIPE_BUF
        cut = len(data) if small else data.rfind(b"\n", 0, select.PIPE_BUF) + 1 or select.PIPE_BUF
        data = data[os.write(fd, data[:cut]) :]
