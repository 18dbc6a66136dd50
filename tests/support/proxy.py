"""A fault-injecting TCP proxy on 127.0.0.1: put it between a client and a server, then make the link slow,
deaf or cut while the client runs.

    with FaultyProxy("127.0.0.1", server_port) as proxy:   # clients use proxy.port
        proxy.cut()             # refuse new connections and close the open ones (an outage)
        proxy.heal()            # back to normal
        proxy.delay_replies(11) # every reply from the server waits 11 s (a slow server)
        proxy.delay_replies(11, writes_only=True)   # only the replies to PUT/POST/DELETE requests
        proxy.delay_writes(0.5) # requests starting with PUT/POST/DELETE wait 0.5 s (slow writes, fast reads)
"""

from __future__ import annotations

import select
import socket
import threading
import time
from types import TracebackType

__all__ = ["FaultyProxy"]

_WRITES = (b"PUT ", b"POST ", b"DELETE ")


class FaultyProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.down = threading.Event()
        self.reply_delay = 0.0
        self.reply_writes_only = False
        self.write_delay = 0.0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="faulty-proxy")

    # ------------------------------------------------------------------ faults
    def cut(self) -> None:
        self.down.set()
        with self._lock:
            for sock in list(self._open):
                self._close(sock)

    def heal(self) -> None:
        self.down.clear()
        self.reply_delay = self.write_delay = 0.0

    def delay_replies(self, seconds: float, writes_only: bool = False) -> None:
        self.reply_delay, self.reply_writes_only = seconds, writes_only

    def delay_writes(self, seconds: float) -> None:
        self.write_delay = seconds

    # ------------------------------------------------------------------ plumbing
    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._closing.set()
        self.listener.close()
        with self._lock:
            for sock in list(self._open):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        self._open.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()  # refused, as a dead server's port would be
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Both directions of one connection, with the current faults applied to each chunk."""
        pair = {client: upstream, upstream: client}
        asked = False  # the client spoke last: the next chunk from the server starts a reply
        wrote = False  # and what it asked was a write
        try:
            while not self._closing.is_set():
                ready, _, _ = select.select(list(pair), [], [], 0.5)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is upstream and self.reply_delay and asked and (wrote or not self.reply_writes_only):
                        time.sleep(self.reply_delay)
                    if sock is client and not asked:
                        wrote = data.startswith(_WRITES)
                    asked = sock is client
                    if sock is client and self.write_delay and data.startswith(_WRITES):
                        time.sleep(self.write_delay)
                    if self.down.is_set():
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):  # (ValueError: a cut closed a socket under select, its fd now -1)
            return
        finally:
            with self._lock:
                self._close(client)
                self._close(upstream)
