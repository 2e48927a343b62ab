"""The two ZeroMQ endpoints: the coordinator's ROUTER and a worker's DEALER.

Both wrap a ``zmq.asyncio`` socket, encode on send and decode on receive.
Frames that do not decode are logged and dropped here, so the roles above
only ever see well-formed messages.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator

import structlog
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from awe.transport.messages import Message, ProtocolError, decode

log = structlog.get_logger("awe.transport")

LINGER_MS = 1000
"""How long close() may keep flushing queued frames: long enough for a last result, short enough to exit."""


RECONNECT_MAX_S = 1.0
"""The longest a worker waits between attempts to reach a coordinator that went away."""


class PeerGone(ConnectionError):
    """The ROUTER has no connection for that identity (the worker has left)."""


def context() -> zmq.asyncio.Context:
    """The process's single ZeroMQ context."""
    return zmq.asyncio.Context.instance()


def flush_and_terminate() -> None:
    """Block until closed sockets have sent what they queued (up to their linger), then end the context.

    A normal interpreter exit does this by itself; call it before ``os._exit``.
    """
    context().term()


class RouterEndpoint:
    """The coordinator's socket: many workers connect, each addressed by its identity."""

    def __init__(self, address: str) -> None:
        self.socket = context().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, LINGER_MS)
        # Without ROUTER_MANDATORY a frame for a vanished worker disappears silently.
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A worker that reconnects with the same identity takes the identity over.
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.socket.bind(address)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    async def send(self, identity: bytes, message: Message) -> None:
        await self.send_frame(identity, message.encode())

    async def send_frame(self, identity: bytes, frame: bytes) -> None:
        """Send an already encoded message (so that a message that cannot be encoded fails before)."""
        try:
            await self.socket.send_multipart([identity, frame])
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                raise PeerGone(identity.decode(errors="replace")) from None
            raise

    async def recv(self) -> tuple[bytes, Message]:
        """The next well-formed message and its sender; bad frames are logged and skipped."""
        while True:
            frames = await self.socket.recv_multipart()
            if len(frames) != 2:
                log.warning("frame_dropped", reason=f"expected 2 frames, got {len(frames)}")
                continue
            identity, payload = frames
            try:
                return identity, decode(payload)
            except ProtocolError as exc:
                log.warning("frame_dropped", peer=identity.decode(errors="replace"), reason=str(exc))

    def close(self) -> None:
        self.socket.close()


class DealerEndpoint:
    """A worker's socket to the coordinator; ZeroMQ reconnects it by itself."""

    def __init__(self, address: str, identity: str) -> None:
        self.socket = context().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, LINGER_MS)
        self.socket.setsockopt(zmq.IDENTITY, identity.encode())
        self.socket.setsockopt(zmq.RECONNECT_IVL, 100)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, int(RECONNECT_MAX_S * 1000))
        self.socket.connect(address)
        self.address = address
        self.last_frame_bytes = 0
        """The size of the frame the last message received came in."""

    async def send(self, message: Message) -> None:
        await self.socket.send(message.encode())

    async def handshakes(self) -> AsyncIterator[int]:
        """Yield the count of completed connections to the coordinator, each time one completes.

        The second and later ones are reconnections: to a coordinator that restarted, most often,
        which learns about this worker sooner from a ``Hello`` sent at once than from the next
        heartbeat's ``Rejoin``. (Nothing comes for ``inproc://``, which has no handshake.)
        """
        monitor = self.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        count = 0
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    count += 1
                    yield count
        finally:
            self.socket.disable_monitor()
            monitor.close(linger=0)

    async def recv(self) -> Message:
        while True:
            frames = await self.socket.recv_multipart()
            self.last_frame_bytes = len(frames[-1])
            try:
                return decode(frames[-1])
            except ProtocolError as exc:
                log.warning("frame_dropped", peer="coordinator", reason=str(exc))

    def close(self) -> None:
        self.socket.close()
