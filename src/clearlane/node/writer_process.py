"""writer_process owns the step writer that runs in a process of its own (issue 18).

On the bulk path the engine applies step N + 1 while a writer seals step N (audit transition,
records, state root, checkpoint signature) and commits it (``node/writer.py``). On a thread,
the writer's Python holds the one interpreter lock the engine needs: on the 1M-trade
reference day, skipping the writer made the clear 28 % faster (docs/PERFORMANCE.md). Here
the same sealing and committing run in a second process, which has an interpreter of its own:

- :class:`WriterProcess` is that process. :meth:`Node.open <clearlane.node.node.Node.open>`
  spawns it when a driver gives the node a way to open its store from another process
  (``NodeOptions.writer_store``: a SQLite file or PostgreSQL; ``Store.reopener``), so its
  start-up (imports, the store's connection) is paid once, outside any clear. It serves one
  pipelined session at a time and stops with the node.
- :class:`ProcessStepWriter` is one session, with :class:`~clearlane.node.writer.StepWriter`'s
  interface. Queued steps cross in the compact form of ``node/wire.py``, on a thread of its own
  (the engine never waits for the pipe); the process acknowledges each transaction's last
  step, which is what :meth:`wait_committed` (the outbox rule) waits for.
- The audit chain lives in the process for the session: it gets the node's auditor without
  its private key (:meth:`Auditor.portable <clearlane.node.auditor.Auditor.portable>`) and
  loads the signer from the key directory itself; at the session's end the node adopts the
  chain state the process reached. So the node must not read its auditor during the session
  (``Node.checkpoint`` refuses to run inside one).

What is committed is exactly what the writer thread commits: the same steps, sealed by the
same function (:func:`~clearlane.node.writer.seal_pending`), in log order, group-committed by
:meth:`Store.commit_steps` in one transaction each, so a crash of either process leaves a
committed prefix of the log. A process that fails, or dies, surfaces as
:class:`~clearlane.node.writer.WriterError` on the node's thread, as a failed thread does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from clearlane.node import wire
from clearlane.node.allocator import tune_allocators
from clearlane.node.auditor import Auditor
from clearlane.node.ports import Store
from clearlane.node.signing import KeyStore
from clearlane.node.warm import load_cached_kernels, warm_compiler
from clearlane.node.writer import MAX_GROUP, PendingStep, StepQueue, WriterError, seal_pending

_CONTROL = b"C"  # a control message's first byte (a step group is a pickle: b"\x80...")
_STOP_WAIT_S = 10.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


# The largest pipe buffer an unprivileged process may ask Linux for by default
# (/proc/sys/fs/pipe-max-size).
_PIPE_BYTES = 1 << 20


def widen_pipe(fd: int, size: int = _PIPE_BYTES) -> int:
    """Ask for a pipe buffer of ``size`` bytes (Linux; elsewhere, or when refused, the pipe keeps
    its own) and return the size it has. Queued steps are ~300 bytes a trade (307 MB for the 1M
    day): through the default 64 KiB buffer every message crossed in 64 KiB turns, each a context
    switch on both sides, and moving 300 MB cost ~1.6 s of the sender's CPU and ~1.8 s of the
    receiver's; with 1 MiB, 0.1 and 0.5 s (``scripts/bench_pipe.py``)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    get_size = getattr(fcntl, "F_GETPIPE_SZ", None)
    if set_size is None or get_size is None:
        return 0
    with contextlib.suppress(OSError):  # above the system's limit: the pipe keeps its size
        fcntl.fcntl(fd, set_size, size)
    return int(fcntl.fcntl(fd, get_size))


def _send(conn: Connection, message: tuple[Any, ...]) -> None:
    conn.send_bytes(_CONTROL + pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


class WriterProcess:
    """The writer's process: started once, one pipelined session at a time.

    It is a fresh interpreter (``python -m clearlane.node.writer_process``) rather than a
    ``multiprocessing`` child: a spawned child re-runs the parent's main module, which a
    driver's script need not guard. Two pipes connect them, passed as inherited descriptors."""

    def __init__(self, open_store: Callable[[], Store], keys: str | Path | None) -> None:
        """``open_store`` opens the node's store in the new process (picklable: ``Store.reopener``);
        ``keys`` is the node's key directory (None: the node signs nothing)."""
        steps_r, steps_w = os.pipe()
        acks_r, acks_w = os.pipe()
        widen_pipe(steps_w)
        self.keys = None if keys is None else str(keys)
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "clearlane.node.writer_process",
                    str(steps_r),
                    str(acks_w),
                    str(os.getpid()),
                ],
                pass_fds=(steps_r, acks_w),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(steps_r)
            os.close(acks_w)
        self._steps = Connection(steps_w, readable=False)
        self._acks = Connection(acks_r, writable=False)
        _send(self._steps, ("open", open_store, self.keys))
        self._ready: bool | None = None
        self._why = ""
        self._busy = False
        # A node dropped without close() stops its process too.
        self._stop = weakref.finalize(self, _shutdown, self._process, self._steps, self._acks)

    def wait_ready(self) -> None:
        """Block until the process has opened the store (or raise why it could not)."""
        if self._ready is None:
            try:
                message = pickle.loads(self._acks.recv_bytes()[1:])
            except EOFError:
                message = ("error", f"it exited (code {self._process.wait()})")
            self._ready = message[0] == "ready"
            self._why = "" if self._ready else str(message[1])
        if not self._ready:
            raise WriterError(f"the writer process did not start: {self._why}")

    def can_serve(self, auditor: Auditor) -> bool:
        """Whether a session can seal for ``auditor``: none is open, no key rotation is half
        done, and the signer (if any) can be loaded there. (A node asks this and takes its
        writer thread when not; a process that died or never started is an error instead.)"""
        return (
            not self._busy
            and auditor.pending_signer is None
            and (auditor.signer is None or self.keys is not None)
        )

    def session(self, auditor: Auditor, committed_seq: int) -> ProcessStepWriter:
        """Start a pipelined session: the process takes over ``auditor``'s chain until
        :meth:`ProcessStepWriter.close`."""
        if not self.can_serve(auditor):
            raise WriterError("the writer process cannot take a session now")
        self.wait_ready()
        if self._process.poll() is not None:
            raise WriterError(f"the writer process exited (code {self._process.returncode})")
        self._busy = True
        return ProcessStepWriter(self, auditor, committed_seq)

    def _ended(self) -> None:
        self._busy = False

    def close(self) -> None:
        """Stop the process (after the session in progress, if any, was closed)."""
        self._stop()


def _shutdown(process: subprocess.Popen[bytes], steps: Connection, acks: Connection) -> None:
    if process.poll() is None:
        with contextlib.suppress(OSError):
            _send(steps, ("stop",))
        try:
            process.wait(_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    steps.close()
    acks.close()


class ProcessStepWriter(StepQueue):
    """One pipelined session of :class:`WriterProcess`; :class:`StepWriter`'s interface."""

    _failed = "step writer process failed"

    def __init__(self, host: WriterProcess, auditor: Auditor, committed_seq: int) -> None:
        super().__init__(committed_seq)
        self._host = host
        self._auditor = auditor
        self._weights: deque[tuple[int, int]] = deque()  # (seq, weight) put, not acknowledged
        self._final: Auditor | None = None  # cpu_seconds: the process's CPU during the session
        signer = auditor.signer
        _send(host._steps, ("start", auditor.portable(), None if signer is None else signer.key_id))
        self._sender = threading.Thread(target=self._send_loop, name="clearlane-writer-send", daemon=True)
        self._receiver = threading.Thread(
            target=self._receive_loop, name="clearlane-writer-acks", daemon=True
        )
        self._sender.start()
        self._receiver.start()

    def _queued(self, step: PendingStep, weight: int) -> None:
        self._weights.append((step.entry.seq, weight))

    def close(self) -> None:
        """Commit everything queued, take the audit chain back, end the session."""
        try:
            self._queue.put(None)
            self._sender.join()
            self._receiver.join()
            self._raise_if_failed()
            if self._final is None:
                raise WriterError("the writer process ended the session without its audit chain")
            self._auditor.adopt(self._final)
        finally:
            self._host._ended()

    # -- the sending thread ----------------------------------------------------------------
    def _send_loop(self) -> None:
        conn = self._host._steps
        try:
            while True:
                group, stop = self._next_group()
                if group and self._error is None:
                    conn.send_bytes(wire.dumps(group))
                if stop:
                    _send(conn, ("end",))
                    return
        except BaseException as exc:  # surfaced to the node's thread
            self._fail(exc)

    # -- the acknowledging thread ----------------------------------------------------------
    def _receive_loop(self) -> None:
        conn = self._host._acks
        try:
            while True:
                try:
                    data = conn.recv_bytes()
                except EOFError:
                    raise WriterError("the writer process exited") from None
                message = pickle.loads(data[1:])
                match message[0]:
                    case "committed":
                        _, seq, steps, busy, seal, at = message
                        with self._cond:
                            self._committed_seq = seq
                            self.committed_at = at
                            self.transactions += 1
                            self.steps += steps
                            self.busy_seconds += busy
                            self.seal_seconds += seal
                            while self._weights and self._weights[0][0] <= seq:
                                self._in_flight -= self._weights.popleft()[1]
                            self._cond.notify_all()
                    case "closed":
                        self._final, self.cpu_seconds = message[1], message[2]
                        return
                    case "error":
                        raise WriterError(message[1])
        except BaseException as exc:
            self._fail(exc)


# ---------------------------------------------------------------------- the process
def main(argv: list[str]) -> None:
    """The writer process: ``python -m clearlane.node.writer_process STEPS_FD ACKS_FD PARENT_PID``."""
    _die_with_parent(int(argv[2]))
    tune_allocators()  # as the node's process did when it opened
    steps = Connection(int(argv[0]), writable=False)
    acks = Connection(int(argv[1]), readable=False)
    try:
        message = pickle.loads(steps.recv_bytes()[1:])
        _, open_store, keys = message
        store = open_store()
        # The compiled kernels the sealing calls (the audit chain's, the Merkle hasher's) are
        # loaded now, with the process's start-up, not by the first steps of the first session
        # (~0.4 s of the writer's time inside the 1M-trade day's clear; issue 18).
        warm_compiler()
        load_cached_kernels()
    except EOFError:
        return
    except BaseException as exc:
        _send(acks, ("error", f"cannot open the store in the writer process: {exc!r}"))
        return
    try:
        _send(acks, ("ready",))
        _Session(steps, acks, store, keys).run()
    except BaseException:
        with contextlib.suppress(OSError):
            _send(acks, ("error", traceback.format_exc(limit=8)))
    finally:
        store.close()


def _die_with_parent(parent: int) -> None:
    """Be killed the moment the node's process dies (Linux ``PR_SET_PDEATHSIG``): a writer left
    running could commit a step after a restarted node has replayed the log, so a crash must
    stop both processes at once, as it stops a writer thread. (The signal follows the thread
    that started this process; if that thread ends first, so does the writer, and the node's
    next wait for it raises ``WriterError``.)"""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the guard was set
        os._exit(1)


class _Session:
    """The process's loop: control messages start and end sessions; step groups are sealed
    (when a session is open) and committed, a transaction per group, acknowledged."""

    def __init__(self, steps: Connection, acks: Connection, store: Store, keys: str | None) -> None:
        self.steps, self.acks, self.store, self.keys = steps, acks, store, keys
        self.auditor: Auditor | None = None
        self.cpu_at_start = 0.0

    def run(self) -> None:
        while True:
            try:
                data = self.steps.recv_bytes()
            except EOFError:
                return
            if data[:1] == _CONTROL:
                if not self.control(pickle.loads(data[1:])):
                    return
                continue
            group = wire.loads(data)
            control = None
            while len(group) < MAX_GROUP and self.steps.poll():
                more = self.steps.recv_bytes()
                if more[:1] == _CONTROL:
                    control = more
                    break
                group.extend(wire.loads(more))
            self.commit(group)
            if control is not None and not self.control(pickle.loads(control[1:])):
                return

    def control(self, message: tuple[Any, ...]) -> bool:
        """Handle one control message; False: stop the process."""
        match message[0]:
            case "start":
                auditor, key_id = message[1], message[2]
                if key_id is not None:
                    if self.keys is None:
                        raise WriterError("the node signs, but the writer process has no key directory")
                    auditor.signer = KeyStore(self.keys).load(key_id)
                self.auditor = auditor
                self.cpu_at_start = time.process_time()
            case "end":
                final = None if self.auditor is None else self.auditor.portable()
                _send(self.acks, ("closed", final, time.process_time() - self.cpu_at_start))
                self.auditor = None
            case "stop":
                return False
        return True

    def commit(self, group: list[PendingStep]) -> None:
        auditor = self.auditor
        if auditor is None:
            raise WriterError("steps reached the writer process outside a session")
        started = time.perf_counter()
        for pending in group:
            seal_pending(auditor, pending)
        sealed = time.perf_counter()
        self.store.commit_steps(group)
        done = time.perf_counter()
        _send(
            self.acks,
            ("committed", group[-1].entry.seq, len(group), done - started, sealed - started, time.time()),
        )


if __name__ == "__main__":
    main(sys.argv[1:])
