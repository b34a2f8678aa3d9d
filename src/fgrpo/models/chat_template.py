"""A chat template's default system prompt, and leaving it out (``model.default_system_prompt``).

Many instruct templates (SmolLM2's, Qwen2.5's) add a system message of their own to a conversation
that has none: SmolLM2's is 21 of the 37 tokens of a short question, paid for in every
generation and every forward pass. Leaving it out wraps the template rather than editing it, so
it works for any template whose default block renders like an explicit system message:

    no system message:  header + default + closing + conversation
    system message S:   header + S + closing + conversation
    S alone:            header + S + closing

(the header may start with a BOS). The wrapped template renders as before and cuts the default's
``header + default + closing`` (keeping the BOS); a template this does not fit is refused with a
clear error rather than mangled.
"""

from __future__ import annotations

import json
from typing import Any

from fgrpo.core.errors import UserInputError

_PROBE_USER = [{"role": "user", "content": "1 + 1"}]


def _render(template_owner: Any, messages: list[dict[str, str]], prompt: bool = True) -> str:
    return template_owner.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=prompt
    )


def default_system_block(template_owner: Any) -> str | None:
    """The text the chat template adds to a conversation without a system message: "" when it
    adds none, None when the template does not render system messages in a way that tells."""
    if not getattr(template_owner, "chat_template", None):
        return ""
    plain = _render(template_owner, _PROBE_USER)
    marked = [
        _render(template_owner, [{"role": "system", "content": m}, *_PROBE_USER])
        for m in "\x01\x02"
    ]
    cut = marked[0].find("\x01")
    if cut < 0 or marked[1][:cut] != marked[0][:cut]:
        return None  # the template drops or reshapes a system message
    header, after = marked[0][:cut], marked[0][cut + 1 :]  # after = closing + conversation
    try:
        alone = _render(template_owner, [{"role": "system", "content": "\x01"}], prompt=False)
    except Exception:  # noqa: BLE001 - a template may refuse a system message on its own
        return None
    if not alone.startswith(header + "\x01") or not after.startswith(alone[cut + 1 :]):
        return None
    if not plain.endswith(after):
        return ""  # the conversation renders differently without a system message: no block
    block = plain[: len(plain) - len(after) + len(alone) - cut - 1]
    return block if block.startswith(header) else ""


def _leading_bos(template_owner: Any, block: str) -> str:
    """The BOS the block starts with when it is the sequence's, not the start of every turn's
    header (SmolLM2's BOS is ``<|im_start|>``, which opens each turn)."""
    bos = getattr(template_owner, "bos_token", None) or ""
    rest = _render(template_owner, _PROBE_USER)[len(block) :]
    return bos if bos and block.startswith(bos) and not rest.startswith(bos) else ""


def _literal(text: str) -> str:
    """``text`` as a Jinja string literal (Jinja reads Python's escapes)."""
    return json.dumps(text, ensure_ascii=False)


def without_default_system_prompt(template_owner: Any, model_name: str) -> None:
    """Wrap ``template_owner``'s chat template (a tokenizer or processor, in place) so a
    conversation without a system message gets none; a conversation with one renders as before."""
    block = default_system_block(template_owner)
    if block == "":
        return
    if block is None:
        raise _cannot(model_name)
    keep = _leading_bos(template_owner, block)
    original = template_owner.chat_template
    expected = {"plain": keep + _render(template_owner, _PROBE_USER)[len(block) :]}
    with_system = [{"role": "system", "content": "S"}, *_PROBE_USER]
    expected["system"] = _render(template_owner, with_system)
    template_owner.chat_template = (
        "{% set rendered %}" + original + "{% endset %}"
        "{% if messages and messages[0]['role'] != 'system' %}"
        "{{ rendered | replace(" + _literal(block) + ", " + _literal(keep) + ", 1) }}"
        "{% else %}{{ rendered }}{% endif %}"
    )
    got = {
        "plain": _render(template_owner, _PROBE_USER),
        "system": _render(template_owner, with_system),
    }
    if got != expected:
        template_owner.chat_template = original
        raise _cannot(model_name)


def _cannot(model_name: str) -> UserInputError:
    return UserInputError(
        f"model.default_system_prompt = false: cannot take {model_name}'s default system prompt "
        "out of its chat template (it does not render a system message like its default); set it "
        "to true"
    )
