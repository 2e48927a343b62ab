"""How bytes move between the coordinator and the workers: sockets, framing, message types.

Nothing here knows about graphs or runs.
"""

from awe.transport.messages import PROTOCOL_VERSION, Message, ProtocolError, decode
from awe.transport.sockets import DealerEndpoint, PeerGone, RouterEndpoint

__all__ = ["PROTOCOL_VERSION", "DealerEndpoint", "Message", "PeerGone", "ProtocolError", "RouterEndpoint", "decode"]
