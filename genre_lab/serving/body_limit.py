"""ASGI middleware: a request body over ``max_bytes`` gets a 413 JSON error before the app parses any of it.

A declared ``Content-Length`` over the limit is refused at once; a chunked body is read up to the limit and refused
as soon as it passes it, so a client cannot make the server hold more than ``max_bytes`` of one request."""

from __future__ import annotations

import json
from typing import Any

from genre_lab.serving.schema import error_payload


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, int(max_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self.refuse(send, int(declared))
        chunks, size, more = [], 0, True
        while more:  # read the body here (the app would read it whole anyway), stopping at the limit
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self.refuse(send, size)
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, when it comes

        await self.app(scope, replay, send)

    async def refuse(self, send: Any, size: int) -> None:
        payload = json.dumps(error_payload(
            413, None, f"request body of {size:,} bytes or more is over the server's limit of {self.max_bytes:,} "
                       "bytes (max_body_bytes); send fewer movies per request")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
