"""Clipping an update to a norm, and the client side of ``privacy.dp = "client-fixed"``.

Flower's ``DifferentialPrivacyClientSideFixedClipping`` puts the clipping norm in the round's
config; the ClientApp's train function then clips its update θ_k − θ to that norm before the
reply leaves the node. This is Flower's ``fixedclipping_mod`` with two differences: rounds
without the key (every other ``privacy.dp``) pass untouched, where the bare mod refuses them;
and an unchanged adapter (a GRPO step whose rollouts were all rewarded alike moves nothing)
passes as is, where Flower's clip divides by its zero norm.
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp.typing import ClientAppCallable
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from fgrpo.models.clipping import clip_update


def clip_when_asked(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    config = msg.content["config"]
    reply = call_next(msg, context)
    # A failed round's reply (fgrpo.client.failure) has no adapter: it passes as is, so the
    # server reports the client's own error rather than this mod's KeyError.
    if (
        KEY_CLIPPING_NORM in config
        and not reply.has_error()
        and "arrays" in reply.content.array_records
    ):
        norm = float(config[KEY_CLIPPING_NORM])  # type: ignore[arg-type]
        reply.content["arrays"] = clip_update(reply.content["arrays"], msg.content["arrays"], norm)
    return reply
