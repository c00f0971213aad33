"""How bytes cross to and from a plugin's JavaScript (JSON text has no bytes): valid UTF-8 as text, anything else
as base64; and JS strings as UTF-8 the way SiYuan's Go side converts them."""

from __future__ import annotations

import base64

__all__ = ["b64", "payload", "unb64", "utf8"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def payload(data: bytes) -> dict[str, str]:
    """Bytes for the guest: valid UTF-8 as text (no base64 to decode in JS), anything else as base64."""
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": b64(data)}


def utf8(text: str) -> bytes:
    """A JS string as UTF-8; lone surrogates become U+FFFD, as SiYuan's Go conversion does."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text).encode("utf-8")
