"""A fake Slack Socket Mode endpoint: a local WebSocket server that sends envelopes and collects acks."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


class FakeSocketMode:
    """Sends `hello`, then each envelope given to `send`; records every ack the app returns."""

    def __init__(self) -> None:
        self._outbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.acks: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self._server: Server | None = None

    def start(self) -> FakeSocketMode:
        """Listen on an ephemeral local port."""
        self._server = serve(self._handle, "127.0.0.1", 0)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the server and its connections."""
        if self._server is not None:
            self._server.shutdown()

    @property
    def url(self) -> str:
        """The ws:// URL apps.connections.open should hand out."""
        assert self._server is not None
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link"

    def send(self, envelope: dict[str, Any]) -> None:
        """Queue an envelope ({"envelope_id", "type", "payload", ...}) for the connected app."""
        self._outbox.put(envelope)

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The app's ack of one envelope."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((a for a in list(self.acks) if a.get("envelope_id") == envelope_id), None)
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no ack for envelope {envelope_id}; acks: {self.acks}")

    def _handle(self, conn: ServerConnection) -> None:
        conn.send(
            json.dumps(
                {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0REVBOT"}}
            )
        )
        self.connected.set()
        reader = threading.Thread(target=self._read_acks, args=(conn,), daemon=True)
        reader.start()
        while reader.is_alive():
            try:
                envelope = self._outbox.get(timeout=0.1)
            except queue.Empty:
                continue
            conn.send(json.dumps(envelope))

    def _read_acks(self, conn: ServerConnection) -> None:
        try:
            for message in conn:
                self.acks.append(json.loads(message))
        except ConnectionClosed:
            return
