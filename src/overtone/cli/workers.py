"""``overtone start --workers N``: N server processes sharing one port (``SO_REUSEPORT``).

The supervisor binds nothing itself. Each worker is a full node of the cluster (the Redis
broker is required), binds the port with ``SO_REUSEPORT`` so the kernel spreads new
connections across workers, and reports readiness on a pipe. The supervisor restarts a worker
that dies, forwards SIGTERM/SIGINT (every worker drains its clients with 4200) and, on
SIGHUP, replaces the workers one at a time, starting each replacement and waiting until it
listens before stopping the old one, so the port never stops accepting connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from overtone.server import WORKER_ENV

log = logging.getLogger("overtone.workers")

READY_FD_ENV = "OVERTONE_READY_FD"
READY_TIMEOUT = 30.0


class Worker:
    """One child process and its readiness pipe."""

    def __init__(self, index: int, process: asyncio.subprocess.Process) -> None:
        self.index = index
        self.process = process


class Supervisor:
    """Starts, watches, restarts and stops the workers."""

    def __init__(self, count: int, argv: Sequence[str], stop_timeout: float) -> None:
        self.count = count
        self.argv = list(argv)
        self.stop_timeout = stop_timeout
        self.workers: dict[int, Worker] = {}
        self.stopping = False
        self._restarting = False
        self._started = asyncio.Event()

    async def spawn(self, index: int) -> Worker:
        """Start worker ``index`` and wait until it listens (or fails)."""
        read_fd, write_fd = os.pipe()
        env = {**os.environ, WORKER_ENV: str(index), READY_FD_ENV: str(write_fd)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "overtone", *self.argv, env=env, pass_fds=(write_fd,)
        )
        os.close(write_fd)
        loop = asyncio.get_running_loop()
        try:
            ready = await asyncio.wait_for(
                loop.run_in_executor(None, os.read, read_fd, 16), READY_TIMEOUT
            )
        except TimeoutError:
            ready = b""
        finally:
            os.close(read_fd)
        if not ready:
            log.error("worker %d (pid %d) did not become ready", index, process.pid)
        else:
            log.info("worker %d ready (pid %d)", index, process.pid)
        return Worker(index, process)

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; return 0 when every worker stopped cleanly."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.rolling_restart()))
        for index in range(self.count):
            self.workers[index] = await self.spawn(index)
        self._started.set()
        watchers = {index: loop.create_task(self._watch(index)) for index in self.workers}
        await stop.wait()
        self.stopping = True
        for task in watchers.values():
            task.cancel()
        codes = await asyncio.gather(*(self._stop(w) for w in self.workers.values()))
        return 0 if all(code == 0 for code in codes) else 1

    async def _watch(self, index: int) -> None:
        delay = 0.5
        while True:
            worker = self.workers[index]
            code = await worker.process.wait()
            if self.stopping:
                return
            if self.workers.get(index) is not worker:
                continue  # replaced by a rolling restart: watch the new one
            log.error("worker %d exited with %s: restarting in %.1f s", index, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            if not self.stopping:
                self.workers[index] = await self.spawn(index)

    async def rolling_restart(self) -> None:
        """Replace each worker in turn: new one ready first, then the old one drains."""
        if self._restarting or self.stopping:
            return
        self._restarting = True
        try:
            await self._started.wait()  # a SIGHUP during the first start waits for it
            log.info("rolling restart of %d worker(s)", self.count)
            for index in sorted(self.workers):
                old = self.workers[index]
                self.workers[index] = await self.spawn(index)
                await self._stop(old)
        finally:
            self._restarting = False

    async def _stop(self, worker: Worker) -> int:
        process = worker.process
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self.stop_timeout + 5)
            except TimeoutError:
                log.error("worker %d did not stop in time: killing it", worker.index)
                process.kill()
                await process.wait()
        return int(process.returncode or 0)


def signal_ready() -> None:
    """Called by a worker once it listens: tell the supervisor (no-op outside one)."""
    fd = os.environ.get(READY_FD_ENV)
    if fd is None:
        return
    try:
        os.write(int(fd), b"ready\n")
        os.close(int(fd))
    except OSError:
        pass
