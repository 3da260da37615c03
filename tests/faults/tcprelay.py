"""A TCP relay in front of a server (MinIO, for the object store's tests) that cuts a connection after it
has carried a given number of answer bytes, so a download breaks midway on purpose:

    with TcpRelay("127.0.0.1", 19000) as relay:     # threads serving 127.0.0.1:<relay.port>
        relay.cut_after(1 << 20)                    # the next connection dies after 1 MiB to the client
        ...                                         # a client of relay.url reads; the cut lands there
        assert relay.cuts == 1 and relay.connections == 2

Bytes are relayed as they are (S3 signatures cover the Host header the client sent, which the server
checks as it arrives, so they stay valid). `connections` counts the connections accepted, `cuts` the
connections cut.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class TcpRelay:
    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._cut_after: int | None = None
        self._cut_times = 0
        self._sockets: list[socket.socket] = []
        self._closed = False

    def cut_after(self, answer_bytes: int, times: int = 1) -> None:
        """The next `times` connections accepted are closed (both ways) once `answer_bytes` bytes of
        the server's answers went through them: the client sees its answer end early."""
        with self._lock:
            self._cut_after, self._cut_times = answer_bytes, times

    def __enter__(self) -> TcpRelay:
        threading.Thread(target=self._accept, daemon=True, name="tcprelay-accept").start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._closed = True
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in [self._listener, *sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            with self._lock:
                self.connections += 1
                limit = self._cut_after if self._cut_times > 0 else None
                if limit is not None:
                    self._cut_times -= 1
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, limit), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if limit is not None and sent + len(data) >= limit:
                    target.sendall(data[: limit - sent])
                    with self._lock:
                        self.cuts += 1
                    break
                target.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (source, target):  # one side ended: end both, as a dropped connection does
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
