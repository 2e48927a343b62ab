"""How bytes move between the coordinator and the workers: sockets, framing, message types.

Nothing here knows about graphs or runs.
"""

from awe.transport.messages import PROTOCOL_VERSION, Message, ProtocolError, decode
from awe.transport.sockets import (
    MAX_FRAME_BYTES,
    MAX_MESSAGES_PER_SEND,
    RECONNECT_MAX_S,
    DealerEndpoint,
    FrameTooLarge,
    PeerGone,
    RouterEndpoint,
    flush_and_terminate,
    is_local_address,
)

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_MESSAGES_PER_SEND",
    "PROTOCOL_VERSION",
    "RECONNECT_MAX_S",
    "DealerEndpoint",
    "FrameTooLarge",
    "Message",
    "PeerGone",
    "ProtocolError",
    "RouterEndpoint",
    "decode",
    "flush_and_terminate",
    "is_local_address",
]
