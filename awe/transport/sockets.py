"""The two ZeroMQ endpoints: the coordinator's ROUTER and a worker's DEALER.

Both drive a ZeroMQ socket from the event loop (see :class:`_Driven`), encode on
send and decode on receive. Frames that do not decode are logged and dropped here,
so the roles above only ever see well-formed messages.

What reaches the roles is also bounded and, with CURVE, authenticated:

* a frame over ``max_frame_bytes`` never arrives (ZeroMQ's ``MAXMSGSIZE``
  closes the connection that sent it before reading it into memory), and
  each side refuses to send one (:class:`FrameTooLarge`);
* with CURVE keys (:mod:`awe.transport.curve`) only allowed workers complete
  the handshake, and a message whose routing identity does not start with the
  public key its connection authenticated with is dropped before it is decoded;
* a second connection with the identity of a connected worker is ignored by
  ZeroMQ (``ROUTER_HANDOVER`` is off): it cannot cut the worker off or speak
  for it. The identity is free again once the worker's connection closes, as
  it does when the worker's process ends, or when ZeroMQ's own heartbeat
  (``peer_timeout``) finds the connection dead; a worker that connected in
  between is ignored for good, and connects afresh when the coordinator stays
  silent to it (:meth:`DealerEndpoint.renew_if_ignored`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, cast

import structlog
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from awe.transport.curve import ClientKeys, ServerKeys, key_of, start_authenticator
from awe.transport.messages import Message, ProtocolError, decode

log = structlog.get_logger("awe.transport")

DRAIN_BEFORE_YIELD = 64
"""Messages a receive loop takes off a busy socket in a row before it lets the event loop run other tasks."""

LINGER_MS = 1000
"""How long close() may keep flushing queued frames: long enough for a last result, short enough to exit."""


RECONNECT_MAX_S = 1.0
"""The longest a worker waits between attempts to reach a coordinator that went away."""


MAX_FRAME_BYTES = 32_000_000
"""The default largest frame either side accepts: four times the largest state the API accepts by default."""

MAX_MESSAGES_PER_SEND = 64
"""Messages a worker may send in one ZeroMQ message, a frame each, once the coordinator's ``Welcome``
says it reads them (``batches``): its queued results go together, one send and one wake-up of each
side's I/O thread for many. The coordinator drops a ZeroMQ message of more frames whole, logged."""


def is_local_address(address: str) -> bool:
    """Whether only processes on this machine can reach a ZeroMQ address (loopback TCP, ipc, inproc).

    A wildcard (``*``, ``0.0.0.0``), a host name or an interface name reaches the network.
    """
    transport, _, rest = address.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = rest.rpartition(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:  # a host or interface name: it may stand for any address
        return False


class PeerGone(ConnectionError):
    """The ROUTER has no connection for that identity (the worker has left)."""


class FrameTooLarge(ValueError):
    """A message that encodes to more than the frame limit: the other side would drop the connection."""


def encode(message: Message, max_frame_bytes: int) -> bytes:
    """``message`` as one frame, or :class:`FrameTooLarge` if the other side would refuse it."""
    frame = message.encode()
    if len(frame) > max_frame_bytes:
        raise FrameTooLarge(
            f"a {message.kind} message of {len(frame)} bytes is over the frame limit of {max_frame_bytes} bytes "
            "(--max-frame-bytes, the same on the coordinator and its workers)"
        )
    return frame


def context() -> zmq.asyncio.Context:
    """The process's single ZeroMQ context."""
    return zmq.asyncio.Context.instance()


class _Driven:
    """A ZeroMQ socket driven by the event loop directly: non-blocking calls, and a wait only when one fails.

    ``zmq.asyncio`` costs a future, a registration and often an extra turn of the loop per message
    (13.5 us per send here, against 5.1 us for the same non-blocking send on a plain socket), which
    is much of what a step costs when hundreds of runs are in flight. Here a receive takes a waiting
    message at once, and a send goes at once; only a receive that finds nothing waits for the
    socket's descriptor. That descriptor is edge-triggered: it fires when the socket's events may
    have changed, and any call on the socket (a send too) can take the signal of a message that
    arrived meanwhile, so after each send the receive that waits is woken if a message is there.
    After :data:`DRAIN_BEFORE_YIELD` messages in a row a receive yields once, so that a flood
    cannot keep the loop's other tasks (heartbeats, dispatching) from running.

    ``wait_to_send``: a send that finds ZeroMQ's queue full waits for room (a DEALER); otherwise it
    raises ``zmq.Again`` (a ROUTER, whose queues are per peer: it is always writable as a whole).
    """

    def __init__(self, socket: zmq.asyncio.Socket, *, wait_to_send: bool) -> None:
        self.socket: zmq.Socket[Any] = zmq.Socket.shadow(socket.underlying)
        self.wait_to_send = wait_to_send
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._send_turn = asyncio.Lock()
        self._in_a_row = 0

    def _watch(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self.socket.FD, self._events_changed)
        return self._loop

    def stop(self) -> None:
        """Stop watching the descriptor (before the socket closes)."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError, ValueError, OSError, zmq.ZMQError):  # at shutdown
                self._loop.remove_reader(self.socket.FD)
        self._loop = None

    def _events_changed(self) -> None:
        """Wake whoever waits for what the socket can do now (reading the events also rearms the descriptor)."""
        try:
            events = self._events()
        except zmq.ZMQError:  # closed meanwhile
            return
        if events & zmq.POLLIN and self._readable is not None and not self._readable.done():
            self._readable.set_result(None)
        if events & zmq.POLLOUT and self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    async def recv_multipart(self, *, copy: bool = True) -> list[Any]:
        loop = self._watch()
        if self._in_a_row >= DRAIN_BEFORE_YIELD:
            self._in_a_row = 0
            await asyncio.sleep(0)
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=copy)
            except zmq.Again:
                self._in_a_row = 0
            else:
                self._in_a_row += 1
                return frames
            self._readable = loop.create_future()
            try:
                await self._readable
            finally:
                self._readable = None

    def count_more(self, messages: int) -> None:
        """Count ``messages`` more received than the ZeroMQ message just read: a sender's several, a frame each.

        The yield after :data:`DRAIN_BEFORE_YIELD` counts what the loop handles, not what ZeroMQ carried.
        """
        self._in_a_row += messages

    def send_now(self, frames: list[bytes]) -> bool:
        """Send at once if the socket has room and no send waits before this one; False if not sent."""
        self._watch()
        if self._send_turn.locked():
            return False
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            return False
        self._after_send()
        return True

    async def send_multipart(self, frames: list[bytes]) -> None:
        loop = self._watch()
        if not self._send_turn.locked():
            if self.send_now(frames):
                return
            if not self.wait_to_send:
                raise zmq.Again()
        async with self._send_turn:  # wait for room, in the order the sends came
            while True:
                self._writable = loop.create_future()
                try:
                    if not self._events() & zmq.POLLOUT:
                        await self._writable
                finally:
                    self._writable = None
                try:
                    self.socket.send_multipart(frames, zmq.NOBLOCK)
                except zmq.Again:
                    continue
                self._after_send()
                return

    def _events(self) -> int:
        """What the socket can do now (``POLLIN``, ``POLLOUT``); reading it also rearms the descriptor."""
        return cast(int, self.socket.get(zmq.EVENTS))

    def _after_send(self) -> None:
        if self._readable is not None:  # the send may have taken the signal of a message that came in
            self._events_changed()


def flush_and_terminate() -> None:
    """Block until closed sockets have sent what they queued (up to their linger), then end the context.

    A normal interpreter exit does this by itself; call it before ``os._exit``.
    """
    context().term()


class RouterEndpoint:
    """The coordinator's socket: many workers connect, each addressed by its identity."""

    def __init__(
        self,
        address: str,
        *,
        curve: ServerKeys | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        peer_timeout: float | None = None,
    ) -> None:
        """``curve``: accept only the allowed workers' keys, and encrypt. ``peer_timeout``: seconds after
        which a connection that answers no ZeroMQ heartbeat is closed, freeing its identity (None: never).
        """
        self.max_frame_bytes = max_frame_bytes
        self.authenticator = start_authenticator(context(), curve) if curve is not None else None
        self.socket = context().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, LINGER_MS)
        # Without ROUTER_MANDATORY a frame for a vanished worker disappears silently.
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A second connection with a connected worker's identity is ignored, not handed the identity.
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
        if peer_timeout is not None:
            self.socket.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(peer_timeout * 1000 / 3)))
            self.socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(1, int(peer_timeout * 1000)))
        if curve is not None:
            self.socket.setsockopt(zmq.CURVE_SERVER, 1)
            self.socket.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
        self.last_frame_bytes = 0
        """The size of the frame the last message received came in."""
        self._received: deque[tuple[bytes, bytes]] = deque()
        """Frames of a ZeroMQ message not yet decoded: a worker may send several messages in one."""
        self._driven = _Driven(self.socket, wait_to_send=False)
        try:
            self.socket.bind(address)
        except zmq.ZMQError:
            self.close()
            raise
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def encode(self, message: Message) -> bytes:
        """``message`` as a frame a worker accepts, or :class:`FrameTooLarge`."""
        return encode(message, self.max_frame_bytes)

    async def send(self, identity: bytes, message: Message) -> None:
        await self.send_frame(identity, self.encode(message))

    async def send_frame(self, identity: bytes, frame: bytes) -> None:
        """Send an already encoded message (so that a message that cannot be encoded fails before)."""
        try:
            await self._driven.send_multipart([identity, frame])
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                raise PeerGone(identity.decode(errors="replace")) from None
            raise

    def send_frame_now(self, identity: bytes, frame: bytes) -> bool:
        """Send an encoded message if that needs no wait; False if not sent (no room, or a send waits before it).

        :class:`PeerGone` as :meth:`send_frame`; any other error is left to the awaited send to meet.
        """
        try:
            return self._driven.send_now([identity, frame])
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                raise PeerGone(identity.decode(errors="replace")) from None
            return False

    async def recv(self) -> tuple[bytes, Message]:
        """The next well-formed message and its sender; bad frames are logged and skipped, each alone."""
        while True:
            if not self._received:
                received = await self._recv_frames()
                if received is None:
                    continue
                identity, payloads = received
                self._driven.count_more(len(payloads) - 1)
                self._received.extend((identity, payload) for payload in payloads)
            identity, payload = self._received.popleft()
            self.last_frame_bytes = len(payload)
            try:
                return identity, decode(payload)
            except ProtocolError as exc:
                log.warning("frame_dropped", peer=identity.decode(errors="replace"), reason=str(exc))

    async def _recv_frames(self) -> tuple[bytes, list[bytes]] | None:
        """The next sender and its payloads (a message each); None (logged) for a ZeroMQ message of the
        wrong shape or from a false identity."""
        if self.authenticator is None:
            frames = await self._driven.recv_multipart()
            if 2 <= len(frames) <= MAX_MESSAGES_PER_SEND + 1:
                return frames[0], frames[1:]
            count = len(frames)
        else:  # the frames' properties say which key sent them: one connection sends all of a message
            parts = await self._driven.recv_multipart(copy=False)
            if 2 <= len(parts) <= MAX_MESSAGES_PER_SEND + 1:
                identity = parts[0].bytes
                return (identity, [p.bytes for p in parts[1:]]) if _sent_by_key_holder(identity, parts[1]) else None
            count = len(parts)
        log.warning(
            "frame_dropped",
            reason=f"expected 1 to {MAX_MESSAGES_PER_SEND} messages, got {count - 1} frames after the identity",
        )
        return None

    def close(self) -> None:
        self._driven.stop()
        self.socket.close()
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None


def _sent_by_key_holder(identity: bytes, payload: zmq.Frame) -> bool:
    """Whether the sender's identity claims the public key its connection authenticated with (see curve.py).

    The ZAP handler gives each authenticated connection the user id of its public key; a peer
    with a key of its own that claims another key's identity is dropped here, undecoded.
    """
    try:
        user_id = str(payload.get("User-Id"))
    except zmq.ZMQError:  # no ZAP user id: not an authenticated connection
        user_id = ""
    if user_id and key_of(identity) == user_id.encode("ascii", errors="replace"):
        return True
    log.warning(
        "frame_dropped",
        peer=identity.decode(errors="replace"),
        key=user_id,
        reason="its identity does not start with the key it authenticated with",
    )
    return False


class DealerEndpoint:
    """A worker's socket to the coordinator; ZeroMQ reconnects it by itself."""

    def __init__(
        self,
        address: str,
        identity: str,
        *,
        curve: ClientKeys | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        """With ``curve`` keys the socket's identity is the worker's public key, then ``identity``."""
        self.max_frame_bytes = max_frame_bytes
        self.socket = context().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, LINGER_MS)
        self.socket.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
        if curve is not None:
            self.socket.setsockopt(zmq.CURVE_SERVERKEY, curve.server_public)
            self.socket.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
            self.socket.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
        self.socket.setsockopt(zmq.IDENTITY, curve.identity(identity) if curve is not None else identity.encode())
        self.curve = curve is not None
        self._handshakes = self.socket.get_monitor_socket(HANDSHAKE_EVENTS | zmq.EVENT_DISCONNECTED)
        self._watcher: asyncio.Future[None] | None = None
        self._connections: asyncio.Queue[int] = asyncio.Queue()
        self._connected_count = 0
        self.connected_at: float | None = None
        """When the current connection's handshake succeeded (monotonic); None while there is none."""
        self.last_received = time.monotonic()
        self.socket.setsockopt(zmq.RECONNECT_IVL, 100)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, int(RECONNECT_MAX_S * 1000))
        self.socket.connect(address)
        self.address = address
        self.last_frame_bytes = 0
        """The size of the frame the last message received came in."""
        self._driven = _Driven(self.socket, wait_to_send=True)

    async def send(self, message: Message) -> None:
        """Send ``message``; :class:`FrameTooLarge` (a ``ValueError``) if the coordinator would refuse it."""
        await self._driven.send_multipart([self.encode(message)])

    def encode(self, message: Message) -> bytes:
        """``message`` as a frame the coordinator accepts, or :class:`FrameTooLarge`."""
        return encode(message, self.max_frame_bytes)

    async def send_frames(self, frames: list[bytes]) -> None:
        """Encoded messages in one ZeroMQ message, a frame each: only to a coordinator that reads them
        (``Welcome.batches``), and at most :data:`MAX_MESSAGES_PER_SEND`."""
        await self._driven.send_multipart(frames)

    def send_now(self, message: Message) -> bool:
        """Send ``message`` if that needs no wait; False if not sent.

        :class:`FrameTooLarge` as :meth:`send`; a socket error is left to the awaited send to meet.
        """
        frame = self.encode(message)
        try:
            return self._driven.send_now([frame])
        except zmq.ZMQError:
            return False

    async def handshakes(self) -> AsyncIterator[int]:
        """Yield the count of completed connections to the coordinator, each time one completes.

        The second and later ones are reconnections: to a coordinator that restarted, most often,
        which learns about this worker sooner from a ``Hello`` sent at once than from the next
        heartbeat's ``Rejoin``. (Nothing comes for ``inproc://``, which has no handshake.)
        """
        self._watch()
        while True:
            yield await self._connections.get()

    def _watch(self) -> None:
        """Start following the socket's monitor (one reader: a socket has one monitor)."""
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch_handshakes())

    async def recv(self) -> Message:
        self._watch()
        while True:
            frames = await self._driven.recv_multipart()
            self.last_received = time.monotonic()
            self.last_frame_bytes = len(frames[-1])
            try:
                return decode(frames[-1])
            except ProtocolError as exc:
                log.warning("frame_dropped", peer="coordinator", reason=str(exc))

    def renew_if_ignored(self, after: float) -> bool:
        """Connect afresh if the coordinator has said nothing for ``after`` seconds over a live connection.

        That happens when this connection was made while the coordinator still held an older one of
        this worker (a half-open connection of a crashed process, say): ZeroMQ then ignores the new
        one for good, even once the old one is gone. A new connection finds the identity free.
        While there is no connection (the coordinator is down) nothing is done: ZeroMQ reconnects by
        itself, and the messages queued meanwhile are kept for it.
        """
        if self.connected_at is None:
            return False
        silent = time.monotonic() - max(self.last_received, self.connected_at)
        if silent < after:
            return False
        log.warning("reconnecting", reason=f"the coordinator ignored this connection for {silent:.1f}s")
        self.connected_at = None
        self.socket.disconnect(self.address)
        self.socket.connect(self.address)
        return True

    async def _watch_handshakes(self) -> None:
        """Follow the connection's state; with CURVE, say why the worker cannot get in.

        A failure is logged once per failing streak (ZeroMQ retries by itself); without this a
        refused worker would only notice that the coordinator is silent.
        """
        told = False
        while True:
            event = parse_monitor_message(await self._handshakes.recv_multipart())["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.connected_at = time.monotonic()
                self._connected_count += 1
                self._connections.put_nowait(self._connected_count)
                if told:
                    log.info("coordinator_handshake_succeeded")
                told = False
            elif event == zmq.EVENT_DISCONNECTED:
                self.connected_at = None
            elif self.curve and not told and event in HANDSHAKE_FAILURES:
                name, reason = HANDSHAKE_FAILURES[event]
                log.error(name, reason=reason)
                told = True

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        with contextlib.suppress(zmq.ZMQError):
            self.socket.disable_monitor()
        self._handshakes.close(linger=0)
        self._driven.stop()
        self.socket.close()


HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
HANDSHAKE_FAILURES: dict[int, tuple[str, str]] = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: (
        "coordinator_refused_key",
        "the coordinator does not accept this worker's key: its public key must be in the coordinator's "
        "allowed_workers folder (awe keys --out DIR --add-worker NAME)",
    ),
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: (
        "handshake_failed",
        "the CURVE handshake failed: does the coordinator at this address run with --curve-keys?",
    ),
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: (
        "handshake_failed",
        "the CURVE handshake failed: is coordinator.key in this worker's folder the key of the coordinator at "
        "this address, and does that coordinator run with --curve-keys?",
    ),
}
