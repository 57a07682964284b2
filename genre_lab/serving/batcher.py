"""Dynamic micro-batching: requests that arrive together share one model call.

A request's texts wait in a queue; one worker takes the oldest request, then keeps taking requests until the batch
holds ``max_batch`` texts or ``max_wait_ms`` has passed since it took the first, and runs the model once on all of
them in a worker thread (the event loop keeps accepting requests meanwhile). The model call sorts the rows by
length, so a batch pads each chunk only to its own longest row. ``max_batch=1`` runs each request alone, one after
another: the one-request-at-a-time baseline the benchmark compares with.

FastAPI and uvicorn have no batching of their own; this is the piece they leave to the application.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# texts -> (probabilities [N, genres], decisions [N, genres], cut [N]); blocking, called in the worker thread
Compute = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass
class Job:
    texts: list[str]
    done: asyncio.Future = field(repr=False)


class MicroBatcher:
    """``await batcher.submit(texts)`` -> that request's rows of ``compute`` over a shared batch.
    ``on_batch(rows, seconds)`` is told each model call (the server's batch-size histogram)."""

    def __init__(self, compute: Compute, max_batch: int, max_wait_ms: float,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        self.compute, self.max_batch, self.max_wait = compute, max(int(max_batch), 1), max(max_wait_ms, 0) / 1000
        self.on_batch = on_batch
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genre-lab-model")
        self.worker: asyncio.Task | None = None

    def start(self) -> None:
        self.worker = asyncio.get_running_loop().create_task(self._run(), name="genre-lab micro-batcher")

    async def stop(self) -> None:
        """After the server has drained its requests: nothing is waiting any more."""
        if self.worker is not None:
            self.worker.cancel()
            await asyncio.gather(self.worker, return_exceptions=True)
        self.thread.shutdown(wait=True)

    async def submit(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        job = Job(list(texts), asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.done

    async def _collect(self) -> list[Job]:
        """The oldest request, then whatever joins it before the batch is full or its wait is over."""
        jobs = [await self.queue.get()]
        rows, deadline = len(jobs[0].texts), time.monotonic() + self.max_wait
        while rows < self.max_batch:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except TimeoutError:
                    break
            jobs.append(job)
            rows += len(job.texts)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            texts = [t for job in jobs for t in job.texts]
            start = time.perf_counter()
            try:
                probs, decisions, cut = await loop.run_in_executor(self.thread, self.compute, texts)
            except Exception as err:  # the requests get a 500 with this error; the server keeps serving
                for job in jobs:
                    if not job.done.done():
                        job.done.set_exception(err)
                continue
            if self.on_batch is not None:
                self.on_batch(len(texts), time.perf_counter() - start)
            self._answer(jobs, probs, decisions, cut)

    @staticmethod
    def _answer(jobs: list[Job], *outputs: Any) -> None:
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            if not job.done.done():  # a client that went away cancelled its future
                job.done.set_result(tuple(out[start:end] for out in outputs))
            start = end
