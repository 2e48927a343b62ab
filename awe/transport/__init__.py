"""How bytes move between the coordinator and the workers: sockets, framing, message types.

Nothing here knows about graphs or runs.
"""

from awe.transport.messages import PROTOCOL_VERSION, Message, ProtocolError, decode
from awe.transport.sockets import RECONNECT_MAX_S, DealerEndpoint, PeerGone, RouterEndpoint, flush_and_terminate

__all__ = [
    "PROTOCOL_VERSION",
    "RECONNECT_MAX_S",
    "DealerEndpoint",
    "Message",
    "PeerGone",
    "ProtocolError",
    "RouterEndpoint",
    "decode",
    "flush_and_terminate",
]
