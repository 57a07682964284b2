"""A bounded load generator for ``genre-lab serve``, and the server as a child process: what the deployment
benchmark (scripts/bench_deploy.py) measures throughput, latency and peak memory with.

Loopback only: ``load`` refuses any other host. Each of ``clients`` sends one request after another (a closed
loop, as callers waiting on an answer do) for ``seconds``; nothing is sent after that, so a run is bounded in time
and in requests in flight (at most ``clients``)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

LOOPBACK = ("127.0.0.1", "localhost", "::1")
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class LoadResult:
    clients: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0

    def figures(self) -> dict[str, float]:
        lat = np.asarray(self.latencies_s) * 1000
        return {"clients": self.clients, "requests": len(lat), "errors": self.errors,
                "requests_per_s": len(lat) / self.seconds,
                "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
                "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan")}


def load(url: str, bodies: list[dict[str, Any]], clients: int, seconds: float) -> LoadResult:
    """``clients`` closed-loop clients POSTing ``bodies`` (in turn) to ``url`` for ``seconds``."""
    if urlparse(url).hostname not in LOOPBACK:
        raise ValueError(f"{url}: the load generator talks to loopback addresses only")
    return asyncio.run(_load(url, bodies, clients, seconds))


async def _load(url: str, bodies: list[dict[str, Any]], clients: int, seconds: float) -> LoadResult:
    import httpx  # deferred: a dev / bench dependency

    result = LoadResult(clients, seconds)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        stop = time.perf_counter() + seconds

        async def one_client(k: int) -> None:
            i = k
            while time.perf_counter() < stop:
                start = time.perf_counter()
                response = await client.post(url, json=bodies[i % len(bodies)])
                if response.status_code == 200:
                    result.latencies_s.append(time.perf_counter() - start)
                else:
                    result.errors += 1
                i += clients

        began = time.perf_counter()
        await asyncio.gather(*(one_client(k) for k in range(clients)))
        result.seconds = time.perf_counter() - began
    return result


class ServerProcess:
    """``genre-lab serve <args> port=0`` as a child process; ``url`` once it listens; ``peak_rss_mib`` from the
    kernel's high-water mark; ``stop`` sends SIGTERM and returns the exit code."""

    def __init__(self, args: list[str], log: Path, threads: int | None = None) -> None:
        env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
        self.log = log
        with open(log, "w") as handle:
            self.process = subprocess.Popen([sys.executable, "-m", "genre_lab", "serve", "port=0", *args],
                                            stdout=handle, stderr=subprocess.STDOUT, env=env)
        self.url = self._wait_listening(timeout=300)

    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            found = LISTENING.search(self.log.read_text())
            if found:
                return f"http://127.0.0.1:{found[1]}"
            time.sleep(0.2)
        self.process.kill()
        raise RuntimeError(f"genre-lab serve did not start; its log ({self.log}):\n{self.log.read_text()[-3000:]}")

    def peak_rss_mib(self) -> float:
        """VmHWM: the most resident memory the process has held (Linux)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
