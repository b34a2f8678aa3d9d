"""Client side of ``privacy.dp = "client-fixed"``: Flower's ``fixedclipping_mod``.

The mod clips the client's update θ_k − θ to the norm the server's round config carries
(Flower's ``DifferentialPrivacyClientSideFixedClipping`` puts it there) before the reply
leaves the node. The ClientApp's train function carries this mod always; rounds without that key, i.e. every
run with another ``privacy.dp``, pass through untouched (the bare mod would refuse them).
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp.mod import fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM


def clip_when_asked(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    asked = any(KEY_CLIPPING_NORM in record for record in msg.content.config_records.values())
    return fixedclipping_mod(msg, context, call_next) if asked else call_next(msg, context)
