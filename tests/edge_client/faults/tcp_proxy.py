"""A TCP proxy on loopback for fault injection between the edge and a real teacher.
Modes change while connections are open, from the test's thread.

    proxy = TcpProxy(upstream="127.0.0.1:50051")   # its own asyncio loop, in a thread
    client = GrpcTeacherClient(proxy.address)
    proxy.mode = Mode.STALL      # hold every byte, both ways, until the mode changes
    proxy.wait_for_held_bytes()  # a call is in flight: its request or its response is held
    proxy.mode = Mode.RESET      # reset every connection (RST), and each new one at once
    proxy.mode = Mode.FORWARD    # pass bytes through again (held ones first)
    proxy.close()
"""

from __future__ import annotations

import asyncio
import enum
import socket
import struct
import threading


class Mode(enum.Enum):
    FORWARD = "forward"
    STALL = "stall"
    RESET = "reset"


class TcpProxy:
    def __init__(self, *, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._mode = Mode.FORWARD
        self._changed = threading.Condition()
        self.held_bytes = 0  # bytes held back by STALL so far
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._mode_changed: asyncio.Event | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait()

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        self._loop.call_soon_threadsafe(self._set_mode, mode)
        with self._changed:
            self._changed.wait_for(lambda: self._mode is mode, timeout=10)

    def wait_for_held_bytes(self, *, timeout_s: float = 120.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.held_bytes > 0, timeout=timeout_s)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._mode_changed = asyncio.Event()
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        ready.set()
        self._loop.run_forever()
        server.close()

    def _set_mode(self, mode: Mode) -> None:
        with self._changed:
            self._mode = mode
            self._changed.notify_all()
        if mode is Mode.RESET:
            for writer in list(self._writers):
                _reset(writer)
        assert self._mode_changed is not None
        self._mode_changed.set()
        self._mode_changed = asyncio.Event()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode is Mode.RESET:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            _reset(writer)
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer),
            self._pipe(up_reader, writer),
            return_exceptions=True,
        )
        for each in (writer, up_writer):
            self._writers.discard(each)
            each.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self._mode is Mode.STALL:
                with self._changed:
                    self.held_bytes += len(data)
                    self._changed.notify_all()
            while self._mode is Mode.STALL:
                assert self._mode_changed is not None
                await self._mode_changed.wait()
            if self._mode is Mode.RESET:
                _reset(writer)
                return
            writer.write(data)
            await writer.drain()
        writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Closes with RST rather than FIN: the peer sees a connection reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
