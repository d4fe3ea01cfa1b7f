"""Worker processes: one inference server per CPU on one shared socket, under a supervisor.

The supervisor loads the bundle once, binds the port, then forks the workers: the model's memory is shared
copy-on-write (and `gc.freeze` keeps the collector from writing to it), so N workers cost little more memory
than one. Each worker serves the inherited listening socket; the kernel hands a new connection to whichever
worker accepts it first. A Python process runs Python on one core at a time, so this is how a 2-96 vCPU
instance gets used. The count is `SAGEMAKER_MODEL_SERVER_WORKERS` (the variable SageMaker's serving toolkits
read), by default one per CPU this process may run on.

Health: a byte per worker in memory shared by every process says which workers run, and a counter per worker
how many connections it holds (a busier worker leaves new connections to a less busy one, since keep-alive
clients stay with the worker that accepted them); /ping (answered by any
worker) is 503 while one is down or the fleet is draining. A worker that dies is logged (`worker_exited`) and
started again after `RESTART_DELAY_SECONDS`; /ping is healthy again once it serves.

Stop: on SIGTERM (SageMaker's scale-in and blue/green swaps; SIGKILL follows 30 s later) or SIGINT, the
supervisor marks the fleet draining and passes SIGTERM to every worker; each stops accepting, finishes its
in-flight requests within `drain_seconds`, and exits; the supervisor then exits 0.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import signal
import socket
import threading
import time
from collections.abc import Callable

from serving.container.app import Health, InferenceServer, InferenceService, prepare_process, serve_one
from serving.container.logs import EventLog
from serving.container.settings import ServerSettings

RESTART_DELAY_SECONDS = 1.0
KILL_GRACE_SECONDS = 3.0  # after the drain deadline, before SIGKILL: interpreter teardown
_HANDLED = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


class Fleet(Health):
    """Draining and per-worker state in anonymous shared memory, inherited by every forked worker."""

    def __init__(self, size: int) -> None:
        self.size = size
        # [draining][worker 0 up]...[worker N-1 up][worker 0 connections (uint32)]...
        self._memory = mmap.mmap(-1, 1 + size + 4 * size)
        self._counts = memoryview(self._memory)[1 + size :].cast("I")

    @property
    def draining(self) -> bool:
        return self._memory[0] == 1

    def start_draining(self) -> None:
        self._memory[0] = 1

    def mark(self, worker: int, up: bool) -> None:
        self._memory[1 + worker] = 1 if up else 0
        if not up:
            self._counts[worker] = 0

    def report_connections(self, worker: int | None, count: int) -> None:
        if worker is not None:
            self._counts[worker] = count

    def others_less_busy(self, worker: int | None, count: int) -> bool:
        return worker is not None and any(
            self._counts[i] < count and self._memory[1 + i] == 1 for i in range(self.size) if i != worker
        )

    def down(self) -> list[int]:
        return [i for i in range(self.size) if self._memory[1 + i] != 1]

    def problem(self) -> str | None:
        if self.draining:
            return "draining: the server is shutting down"
        down = self.down()
        if down:
            return f"{len(down)} of {self.size} workers not running (worker {', '.join(map(str, down))}); restarting"
        return None


def bind(host: str, port: int) -> socket.socket:
    listener = socket.create_server((host, port), backlog=InferenceServer.request_queue_size, reuse_port=False)
    listener.setblocking(False)  # workers share it: one that loses the race to accept must not block in accept()
    return listener


def serve(
    settings: ServerSettings,
    log: EventLog | None = None,
    on_ready: Callable[[InferenceService, tuple[str, int]], None] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT (SageMaker stops a container with SIGTERM), then drain; returns the exit
    code. Owns the process: one server, or `settings.workers` of them on a shared socket (`supervise`)."""
    return supervise(settings, log or EventLog(settings.endpoint), on_ready)


def supervise(
    settings: ServerSettings, log: EventLog, on_ready: Callable[[InferenceService, tuple[str, int]], None] | None = None
) -> int:
    prepare_process()
    fleet = Fleet(settings.workers)
    service = InferenceService(settings, log, fleet)
    service.load(settings.model_dir)
    listener = bind(settings.host, settings.port)
    address = listener.getsockname()[:2]
    gc.collect()
    gc.freeze()  # before fork: the model's objects stay shared pages in every worker
    signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)  # taken by sigtimedwait below, never mid-fork
    supervisor = os.getpid()

    def spawn(index: int) -> int:
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the supervisor's code
            code = 1
            try:
                code = _worker(index, service, fleet, listener, supervisor)
            finally:
                os._exit(code)
        return pid

    workers = {spawn(i): i for i in range(settings.workers)}
    log.event("listening", endpoint=log.endpoint, host=address[0], port=address[1], workers=settings.workers)
    if on_ready is not None:
        on_ready(service, address)
    restarts: dict[int, float] = {}
    stopping = False
    while not stopping:
        received = signal.sigtimedwait(_HANDLED, 0.2)
        stopping = received is not None and received.si_signo in (signal.SIGTERM, signal.SIGINT)
        for pid, status in _reap():
            index = workers.pop(pid, None)
            if index is None:
                continue
            fleet.mark(index, False)
            log.event("worker_exited", endpoint=log.endpoint, worker=index, **_exit_status(status))
            restarts[index] = time.monotonic() + RESTART_DELAY_SECONDS
        for index, due in list(restarts.items()):
            if not stopping and time.monotonic() >= due:
                del restarts[index]
                workers[spawn(index)] = index
    return _drain(fleet, workers, listener, settings, log)


def _drain(
    fleet: Fleet, workers: dict[int, int], listener: socket.socket, settings: ServerSettings, log: EventLog
) -> int:
    fleet.start_draining()
    log.event("draining", endpoint=log.endpoint, workers=len(workers), seconds=settings.drain_seconds)
    for pid in workers:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + settings.drain_seconds + KILL_GRACE_SECONDS
    clean = True
    while workers and time.monotonic() < deadline:
        signal.sigtimedwait({signal.SIGCHLD}, 0.1)
        for pid, status in _reap():
            if workers.pop(pid, None) is not None:
                clean = clean and os.waitstatus_to_exitcode(status) == 0
    for pid in workers:  # past every deadline: SageMaker would SIGKILL them anyway
        _signal(pid, signal.SIGKILL)
        clean = False
    listener.close()
    log.event("stopped", endpoint=log.endpoint, clean=clean)
    return 0


def _worker(index: int, service: InferenceService, fleet: Fleet, listener: socket.socket, supervisor: int) -> int:
    for handled in _HANDLED:
        signal.signal(handled, signal.SIG_DFL)
    server = InferenceServer(listener.getsockname()[:2], service, listener, worker=index)
    stop_on_orphan(supervisor)
    fleet.mark(index, True)
    service.log.event("worker_ready", endpoint=service.log.endpoint, worker=index, pid=os.getpid())
    finished = serve_one(server, unblock=_HANDLED)
    service.log.event("worker_stopped", endpoint=service.log.endpoint, worker=index, drained=finished)
    return 0


def stop_on_orphan(supervisor: int) -> None:
    """A worker whose supervisor was killed outright stops itself (its SIGTERM would never come)."""

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def _reap() -> list[tuple[int, int]]:
    exited: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return exited
        if pid == 0:
            return exited
        exited.append((pid, status))


def _exit_status(status: int) -> dict[str, int]:
    code = os.waitstatus_to_exitcode(status)
    return {"signal": -code} if code < 0 else {"exit_code": code}


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
