"""A TCP proxy on loopback in front of a real server, that breaks the connection on purpose:
reset it after the server has sent some bytes (mid-page), or hold every byte back (a server
slower than the timeouts)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Fault:
    reset_after: int | None = None  # bytes from the server, then a TCP reset to both sides
    stall: bool = False  # accept, and pass nothing on
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _reset(sock: socket.socket) -> None:
    """An abortive close (RST). The shutdown wakes the other pump thread blocked on this socket;
    until it returns, the kernel would keep the socket open however it is closed."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _pump(src: socket.socket, dst: socket.socket, fault: Fault, from_server: bool) -> None:
    try:
        while chunk := src.recv(65536):
            if from_server and fault.reset_after is not None:
                with fault.lock:
                    room = fault.reset_after - fault.sent
                    fault.sent += len(chunk)
                if room <= len(chunk):
                    dst.sendall(chunk[: max(room, 0)])
                    _reset(dst)
                    _reset(src)
                    return
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def faulty_proxy(target_port: int, fault: Fault) -> Iterator[int]:
    """Yields the proxy's port on 127.0.0.1."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            held.append(client)
            if fault.stall:
                continue
            upstream = socket.create_connection(("127.0.0.1", target_port))
            held.append(upstream)
            threading.Thread(target=_pump, args=(client, upstream, fault, False), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client, fault, True), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()
        thread.join(5)
