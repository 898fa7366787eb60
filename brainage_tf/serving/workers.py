"""Preprocessing in worker processes, where a crash, a kill or running out of memory costs one scan.

`concurrent.futures.ProcessPoolExecutor` cannot do this: when one of its workers
dies, every pending future fails with `BrokenProcessPool` and it cannot say which
scan the dead worker held (measured: one killed worker lost all 720 results of a
run). Here every worker holds at most one scan, so a dead worker's scan is known:
it gets a failed result naming the signal, a new worker takes its place, and the
other scans go on.

Workers are spawned, not forked (the parent has TensorFlow loaded). On Linux each
asks the kernel to kill it when its parent dies (`PR_SET_PDEATHSIG`), so a
SIGKILLed command leaves no worker behind, nor multiprocessing's resource tracker,
which exits when the last process holding its pipe is gone.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from brainage_tf.errors import ScanError, one_line
from brainage_tf.preprocessing import PreprocessConfig, PreprocessedScan
from brainage_tf.skull_strip import TORCH_THREADS_VARIABLE, available_cores, prepare

T = TypeVar("T")
# A worker's work on one scan: (path, config) -> (scan or None, reason).
Task = Callable[[str, PreprocessConfig], tuple[PreprocessedScan | None, str]]
# Seconds a worker gets to exit after SIGTERM before it is killed.
_STOP_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


def guarded(step: Callable[[], T], path: str) -> tuple[T | None, str]:
    """(step(), "") or (None, one-line reason): a failure is this scan's, not the run's."""
    try:
        return step(), ""
    except ScanError as error:
        return None, one_line(error)
    except Exception as error:  # any other failure is this scan's, not the run's
        return None, one_line(f"{path}: {type(error).__name__}: {error}")


def preprocess_path(path: str, config: PreprocessConfig) -> tuple[PreprocessedScan | None, str]:
    """(preprocessed scan, "") or (None, one-line reason) for one scan file."""
    if not path:
        return None, "no scan file listed for this visit"
    from brainage_tf.preprocessing import preprocess_scan  # nilearn and SimpleITK load late

    return guarded(lambda: preprocess_scan(path, config), path)


def died_reason(path: str, exitcode: int | None) -> str:
    """The failed row's reason when the worker holding `path` died."""
    if exitcode is not None and exitcode < 0:
        how = f"killed by {signal.Signals(-exitcode).name}"
        if -exitcode == signal.SIGKILL:
            how += ", as the out-of-memory killer does"
    else:
        how = f"exited with status {exitcode}"
    return f"{path}: the preprocessing worker died while on this scan ({how})"


def _die_with_parent(parent_pid: int) -> None:
    """Linux: the kernel kills this process when its parent dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere a worker exits when its pipe closes, after its current scan
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _worker_main(connection, config: PreprocessConfig, task: Task, parent_pid: int, threads: int) -> None:
    """A worker: runs `task` on one (index, path) at a time until told to stop or its pipe closes.

    It first loads what its skull stripping needs (a network, with `threads` torch threads unless
    $BRAINAGE_TF_TORCH_THREADS says otherwise), once for all its scans.
    """
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    os.environ.setdefault(TORCH_THREADS_VARIABLE, str(threads))
    try:
        prepare(config.skull_strip)
    except Exception:  # the same failure is then each scan's own, with its reason
        pass
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, path = message
        scan, reason = task(path, config)
        try:
            connection.send((index, scan, reason))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    """One spawned worker process and the parent's end of its pipe."""

    def __init__(self, context, config: PreprocessConfig, task: Task, threads: int):
        self.connection, child = context.Pipe(duplex=True)
        arguments = (child, config, task, os.getpid(), threads)
        self.process = context.Process(target=_worker_main, args=arguments, daemon=True)
        self.process.start()
        child.close()

    def stop(self, graceful: bool) -> None:
        """Ends the process: a stop message when graceful, else SIGTERM; SIGKILL after a grace period."""
        if graceful and self.process.is_alive():
            try:
                self.connection.send(None)
            except OSError:
                pass
        else:
            self.process.terminate()
        self.process.join(_STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


class PreprocessingPool:
    """`workers` spawned processes that preprocess scans; a dead worker fails only its own scan.

    Use it as a context manager: leaving the block, normally or by an exception such
    as an interrupt, stops every worker.

    Example:
        >>> with PreprocessingPool(PreprocessConfig(grid="tiny"), workers=2) as pool:
        ...     for index, scan, reason in pool.results(paths):
        ...         ...
    """

    def __init__(self, config: PreprocessConfig, workers: int, task: Task | None = None):
        """Creates the pool; workers start with the first `results` call.

        Args:
            config: The preprocessing of every scan.
            workers: Processes; 0 preprocesses in the calling process, in order, without isolation.
            task: What a worker runs per scan (None: `preprocess_path`); a module-level function,
                since spawned workers import it by name.
        """
        if workers < 0:
            raise ValueError(f"workers must be at least 0, got {workers}")
        self.config, self.workers, self.task = config, workers, task
        self._context = multiprocessing.get_context("spawn")
        self._live: list[_Worker] = []

    def __enter__(self) -> PreprocessingPool:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close(graceful=exc_type is None)

    def close(self, graceful: bool = True) -> None:
        """Stops every worker (at once unless graceful)."""
        while self._live:
            self._live.pop().stop(graceful)

    def results(self, paths: Sequence[str]) -> Iterator[tuple[int, PreprocessedScan | None, str]]:
        """(index into paths, scan or None, reason) for every path, in the order they finish.

        At most one finished scan per worker waits for the consumer, so memory stays
        bounded by the number of workers however slow the consumer is.
        """
        if self.workers == 0:
            task = self.task or preprocess_path  # looked up now: tests replace it
            for index, path in enumerate(paths):
                yield (index, *task(path, self.config))
            return
        pending = collections.deque(enumerate(paths))
        busy: dict[_Worker, int] = {}
        while pending or busy:
            self._assign(pending, busy)
            handles = [w.connection for w in busy] + [w.process.sentinel for w in busy]
            ready = set(multiprocessing.connection.wait(handles))
            for worker in [w for w in busy if w.connection in ready or w.process.sentinel in ready]:
                index = busy.pop(worker)
                result = self._receive(worker, index, paths[index])
                yield result

    def _assign(self, pending: collections.deque, busy: dict[_Worker, int]) -> None:
        """Gives a scan to every idle worker, starting workers up to `workers`."""
        idle = [w for w in self._live if w not in busy]
        while pending and (idle or len(self._live) < self.workers):
            worker = idle.pop() if idle else self._start()
            index, path = pending[0]
            try:
                worker.connection.send((index, path))
            except OSError:  # it died idle: no scan to blame
                self._discard(worker)
                continue
            pending.popleft()
            busy[worker] = index

    def _receive(self, worker: _Worker, index: int, path: str) -> tuple[int, PreprocessedScan | None, str]:
        """The worker's result, or a failed result naming how it died (it is then discarded)."""
        try:
            if worker.connection.poll():
                received, scan, reason = worker.connection.recv()
                if received == index:
                    return index, scan, reason
        except (EOFError, OSError):
            pass
        worker.process.join(_STOP_SECONDS)
        reason = died_reason(path, worker.process.exitcode)
        self._discard(worker)
        return index, None, reason

    def _start(self) -> _Worker:
        # The workers share the cores: a network in each would otherwise take them all.
        threads = max(1, available_cores() // self.workers)
        worker = _Worker(self._context, self.config, self.task or preprocess_path, threads)
        self._live.append(worker)
        return worker

    def _discard(self, worker: _Worker) -> None:
        """Stops a dead or broken worker; `_assign` starts another when there is work."""
        self._live.remove(worker)
        worker.stop(graceful=False)
