"""``crypto.subtle`` (changes page §2.10): Web Crypto done on the host with the ``cryptography`` package.

The JavaScript half (``host/js/crypto_subtle.js``) checks WebIDL types, turns byte arguments into base64 and
:class:`CryptoKey` objects into handles; everything else happens here: algorithm normalization, usage and
extractability checks, the cryptography. Key material never enters the VM unless the plugin exports it: a
``CryptoKey`` is a handle into :class:`KeyTable`, one table per plugin instance, emptied when the plugin stops and
bounded by :data:`MAX_KEYS` (a key the plugin's JS no longer references is dropped by a ``FinalizationRegistry``).

Every operation answers ``{"value": ...}`` or ``{"error": name, "message": ...}``, where ``name`` is the Web Crypto
error name (``NotSupportedError``, ``InvalidAccessError``, ``OperationError``, ``DataError``, ``SyntaxError``) or
``TypeError``; the JS rejects with a ``DOMException`` (or ``TypeError``) of that name.

Work per call is bounded, because time inside a host operation is the host's, not counted toward the plugin's CPU
limit: data up to :data:`MAX_DATA` bytes, RSA moduli of 1024..8192 bits (generated up to
:data:`MAX_RSA_GENERATE_BITS`), public exponents 3 or 65537 when generating, PBKDF2 work (iterations times output
blocks) up to :data:`MAX_PBKDF2_WORK`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac, keywrap, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric import padding as apadding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from ...errors import HostOpError
from ..runtime.context import Capability, Op
from .encoding import b64

__all__ = ["MAX_DATA", "MAX_KEYS", "MAX_PBKDF2_WORK", "MAX_RSA_GENERATE_BITS", "CryptoFailure", "CryptoOps",
           "KeyTable"]

#: most bytes one call takes as its data (plaintext, ciphertext, message, key data)
MAX_DATA = 16 * 1024 * 1024
#: most CryptoKeys one plugin holds at a time
MAX_KEYS = 4096
#: RSA moduli accepted, in bits (generation stops lower: an 8192-bit key takes seconds of host CPU to find)
RSA_BITS = (1024, 8192)
MAX_RSA_GENERATE_BITS = 4096
#: most PBKDF2 work per call: iterations times the number of hash-sized output blocks
MAX_PBKDF2_WORK = 2_000_000
#: most bytes of a secret key (HMAC, HKDF, PBKDF2)
MAX_SECRET = 64 * 1024


class CryptoFailure(HostOpError):
    """A Web Crypto error: ``name`` is what the plugin's error is called."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name

    def __repr__(self) -> str:
        return f"CryptoFailure({self.name!r}, {str(self)!r})"


def _fail(name: str, message: str) -> NoReturn:
    raise CryptoFailure(name, message)


# ---- names ---------------------------------------------------------------------------------------------------

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "SHA-1": hashes.SHA1, "SHA-256": hashes.SHA256, "SHA-384": hashes.SHA384, "SHA-512": hashes.SHA512,
    "MD5": hashes.MD5,
}
_ALGORITHMS = ["AES-GCM", "AES-CBC", "AES-CTR", "AES-KW", "AES-ECB", "HMAC", "RSA-OAEP", "RSASSA-PKCS1-v1_5",
               "RSA-PSS", "ECDSA", "ECDH", "Ed25519", "X25519", "HKDF", "PBKDF2", *_HASHES]
_CANONICAL = {name.upper(): name for name in _ALGORITHMS}
_AES = ("AES-GCM", "AES-CBC", "AES-CTR", "AES-KW", "AES-ECB")
_RSA = ("RSA-OAEP", "RSASSA-PKCS1-v1_5", "RSA-PSS")
_CURVES: dict[str, type[ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
_CURVE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}
_KDF = ("HKDF", "PBKDF2")

#: which algorithms each operation takes (anything else is NotSupportedError)
_OPERATIONS: dict[str, tuple[str, ...]] = {
    "encrypt": ("AES-GCM", "AES-CBC", "AES-CTR", "AES-ECB", "RSA-OAEP"),
    "sign": ("HMAC", "RSASSA-PKCS1-v1_5", "RSA-PSS", "ECDSA", "Ed25519"),
    "digest": tuple(_HASHES),
    "generateKey": (*_AES, "HMAC", *_RSA, "ECDSA", "ECDH", "Ed25519", "X25519"),
    "importKey": (*_AES, "HMAC", *_RSA, "ECDSA", "ECDH", "Ed25519", "X25519", *_KDF),
    "deriveBits": ("HKDF", "PBKDF2", "ECDH", "X25519"),
    "wrapKey": ("AES-KW", "AES-GCM", "AES-CBC", "AES-CTR", "AES-ECB", "RSA-OAEP"),
    "get key length": (*_AES, "HMAC", *_KDF),
}
_OPERATIONS["decrypt"] = _OPERATIONS["encrypt"]
_OPERATIONS["verify"] = _OPERATIONS["sign"]
_OPERATIONS["unwrapKey"] = _OPERATIONS["wrapKey"]

#: usages a key of each algorithm may have: (secret or private key, public key)
_USAGES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    **{a: (frozenset({"encrypt", "decrypt", "wrapKey", "unwrapKey"}), frozenset()) for a in _AES},
    "AES-KW": (frozenset({"wrapKey", "unwrapKey"}), frozenset()),
    "AES-ECB": (frozenset({"encrypt", "decrypt", "wrapKey", "unwrapKey"}), frozenset()),
    "HMAC": (frozenset({"sign", "verify"}), frozenset()),
    "RSA-OAEP": (frozenset({"decrypt", "unwrapKey"}), frozenset({"encrypt", "wrapKey"})),
    **{a: (frozenset({"sign"}), frozenset({"verify"})) for a in ("RSASSA-PKCS1-v1_5", "RSA-PSS", "ECDSA", "Ed25519")},
    **{a: (frozenset({"deriveKey", "deriveBits"}), frozenset()) for a in ("ECDH", "X25519", "HKDF", "PBKDF2")},
}
_SECRET_ONLY = (*_AES, "HMAC", *_KDF)

_JWK_HASH_SUFFIX = {"SHA-1": "1", "SHA-256": "256", "SHA-384": "384", "SHA-512": "512"}


# ---- keys ------------------------------------------------------------------------------------------------------

@dataclass
class Key:
    type: str  # "secret", "public" or "private"
    extractable: bool
    algorithm: dict[str, Any]  # JSON-ready; RSA's publicExponent as base64
    usages: list[str]
    material: Any  # bytes for a secret key, else a cryptography key object

    def describe(self, handle: int) -> dict[str, Any]:
        return {"id": handle, "type": self.type, "extractable": self.extractable, "algorithm": self.algorithm,
                "usages": self.usages}


@dataclass
class KeyTable:
    """The keys one plugin instance holds, by handle."""

    limit: int = MAX_KEYS
    keys: dict[int, Key] = field(default_factory=dict)
    next_id: int = 1

    def add(self, key: Key) -> dict[str, Any]:
        if len(self.keys) >= self.limit:
            _fail("OperationError", f"this plugin holds {self.limit} CryptoKeys, the most it may; keys it no longer "
                                    "references are freed once they are garbage-collected")
        handle = self.next_id
        self.next_id += 1
        self.keys[handle] = key
        return key.describe(handle)

    def get(self, handle: Any) -> Key:
        key = self.keys.get(handle) if isinstance(handle, int) else None
        if key is None:
            _fail("TypeError", "not a CryptoKey of this plugin")
        return key

    def drop(self, handle: Any) -> None:
        if isinstance(handle, int):
            self.keys.pop(handle, None)


# ---- argument helpers ------------------------------------------------------------------------------------------

def _bytes(value: Any, what: str, limit: int = MAX_DATA) -> bytes:
    if not isinstance(value, str):
        _fail("TypeError", f"{what} must be a BufferSource")
    if len(value) > (limit + 2) // 3 * 4:
        _fail("OperationError", f"{what} is larger than {limit} bytes, the most one call takes")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        _fail("TypeError", f"{what} must be a BufferSource")


def _normalize(alg: Any, op: str) -> dict[str, Any]:
    """The algorithm dictionary with its name made canonical; NotSupportedError if ``op`` does not take it."""
    if not isinstance(alg, dict) or not isinstance(alg.get("name"), str):
        _fail("TypeError", "Algorithm: name is required and must be a string")
    name = _CANONICAL.get(alg["name"].upper())
    if name is None or name not in _OPERATIONS[op]:
        _fail("NotSupportedError", f"Unrecognized algorithm name {alg['name']!r} for {op}")
    return {**alg, "name": name}


def _hash_name(value: Any, what: str = "hash") -> str:
    if isinstance(value, dict):
        value = value.get("name")
    if not isinstance(value, str):
        _fail("TypeError", f"Algorithm: {what} is required and must be a string or an object with a name")
    name = _CANONICAL.get(value.upper())
    if name not in _HASHES:
        _fail("NotSupportedError", f"Unrecognized hash algorithm {value!r}")
    return name


def _hash(name: str) -> hashes.HashAlgorithm:
    return _HASHES[name]()


def _int(alg: dict[str, Any], member: str, *, required: bool = True, default: int | None = None) -> int | None:
    value = alg.get(member)
    if value is None:
        if required:
            _fail("TypeError", f"Algorithm: {member} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail("TypeError", f"Algorithm: {member} must be a number")
    return int(value)


def _check_usages(name: str, kind: str, usages: Any) -> list[str]:
    if not isinstance(usages, list) or not all(isinstance(u, str) for u in usages):
        _fail("TypeError", "keyUsages must be a sequence of KeyUsage strings")
    allowed = _USAGES[name][1 if kind == "public" else 0]
    bad = [u for u in usages if u not in allowed]
    if bad:
        _fail("SyntaxError", f"Cannot create a key using the specified key usages: {name} {kind} keys allow "
                             f"{sorted(allowed) or 'none'}, got {bad}")
    return list(dict.fromkeys(usages))


def _need(key: Key, name: str, usage: str) -> None:
    if key.algorithm["name"] != name:
        _fail("InvalidAccessError", f"The requested operation is not valid for the provided key: it is a "
                                    f"{key.algorithm['name']} key, not {name}")
    if usage not in key.usages:
        _fail("InvalidAccessError", f"key.usages does not permit this operation: {usage!r} is not in {key.usages}")


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64u(value: Any, member: str) -> bytes:
    if not isinstance(value, str):
        _fail("DataError", f"JWK member {member!r} is missing or not a string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        _fail("DataError", f"JWK member {member!r} is not base64url")


def _int_bytes(n: int, size: int | None = None) -> bytes:
    return n.to_bytes(size or max(1, (n.bit_length() + 7) // 8), "big")


# ---- the ciphers ------------------------------------------------------------------------------------------------

def _aes_ctr(key: bytes, counter: bytes, length: int, data: bytes) -> bytes:
    """AES-CTR where only the rightmost ``length`` bits of the counter block count (and wrap around)."""
    if len(counter) != 16:
        _fail("OperationError", "AES-CTR: counter must be 16 bytes")
    if not 1 <= length <= 128:
        _fail("OperationError", "AES-CTR: length must be between 1 and 128")
    blocks = -(-len(data) // 16)
    if length < 128 and blocks > 1 << length:
        _fail("OperationError", "AES-CTR: the data is too long for the counter's length (the counter would repeat)")
    value = int.from_bytes(counter, "big")
    mask = (1 << length) - 1
    out = bytearray()
    offset = 0
    while offset < len(data):
        room = ((1 << length) - (value & mask)) * 16 if length < 128 else len(data)
        chunk = data[offset:offset + room]
        encryptor = Cipher(algorithms.AES(key), modes.CTR(value.to_bytes(16, "big"))).encryptor()
        out += encryptor.update(chunk) + encryptor.finalize()
        offset += len(chunk)
        value &= ~mask  # the counter part wrapped to zero
    return bytes(out)


def _cipher(alg: dict[str, Any], key: Key, data: bytes, encrypt: bool) -> bytes:
    name = alg["name"]
    if name == "RSA-OAEP":
        label = _bytes(alg["label"], "label") if alg.get("label") is not None else None
        pad = apadding.OAEP(apadding.MGF1(_hash(key.algorithm["hash"]["name"])),
                            _hash(key.algorithm["hash"]["name"]), label)
        try:
            if encrypt:
                if key.type != "public":
                    _fail("InvalidAccessError", "RSA-OAEP encrypts with a public key")
                return key.material.encrypt(data, pad)  # type: ignore[no-any-return]
            if key.type != "private":
                _fail("InvalidAccessError", "RSA-OAEP decrypts with a private key")
            return key.material.decrypt(data, pad)  # type: ignore[no-any-return]
        except ValueError as exc:
            _fail("OperationError", f"RSA-OAEP: {exc}")
    secret: bytes = key.material
    if name == "AES-GCM":
        iv = _bytes(alg.get("iv"), "iv")
        tag_bits = _int(alg, "tagLength", required=False, default=128)
        if tag_bits not in (32, 64, 96, 104, 112, 120, 128):
            _fail("OperationError", f"AES-GCM: tagLength {tag_bits} is not one of 32, 64, 96, 104..128")
        if not 8 <= len(iv) <= 1024:
            _fail("OperationError", "AES-GCM: iv must be 8..1024 bytes (12 is the usual length)")
        aad = _bytes(alg["additionalData"], "additionalData") if alg.get("additionalData") is not None else b""
        tag_len = tag_bits // 8
        if encrypt:
            enc = Cipher(algorithms.AES(secret), modes.GCM(iv)).encryptor()
            enc.authenticate_additional_data(aad)
            body = enc.update(data) + enc.finalize()
            return body + enc.tag[:tag_len]
        if len(data) < tag_len:
            _fail("OperationError", "AES-GCM: the data is shorter than the tag")
        dec = Cipher(algorithms.AES(secret), modes.GCM(iv, data[-tag_len:], min_tag_length=4)).decryptor()
        dec.authenticate_additional_data(aad)
        try:
            return dec.update(data[:-tag_len]) + dec.finalize()
        except InvalidTag:
            _fail("OperationError", "AES-GCM: the data could not be authenticated (wrong key, iv, data or tag)")
    if name in ("AES-CBC", "AES-ECB"):
        if name == "AES-CBC":
            iv = _bytes(alg.get("iv"), "iv")
            if len(iv) != 16:
                _fail("OperationError", "AES-CBC: iv must be 16 bytes")
            cipher: Cipher[Any] = Cipher(algorithms.AES(secret), modes.CBC(iv))
        else:
            cipher = Cipher(algorithms.AES(secret), modes.ECB())
        if encrypt:
            padder = padding.PKCS7(128).padder()
            padded = padder.update(data) + padder.finalize()
            enc2 = cipher.encryptor()
            return enc2.update(padded) + enc2.finalize()
        if len(data) % 16 or not data:
            _fail("OperationError", f"{name}: the data is not a whole number of 16-byte blocks")
        dec2 = cipher.decryptor()
        plain = dec2.update(data) + dec2.finalize()
        try:
            unpadder = padding.PKCS7(128).unpadder()
            return unpadder.update(plain) + unpadder.finalize()
        except ValueError:
            _fail("OperationError", f"{name}: bad padding (wrong key or iv, or corrupted data)")
    if name == "AES-CTR":
        return _aes_ctr(secret, _bytes(alg.get("counter"), "counter"), _int(alg, "length") or 0, data)
    if name == "AES-KW":
        try:
            if encrypt:
                if len(data) % 8 or len(data) < 16:
                    _fail("OperationError", "AES-KW: the data to wrap must be a multiple of 8 bytes, at least 16")
                return keywrap.aes_key_wrap(secret, data)
            return keywrap.aes_key_unwrap(secret, data)
        except keywrap.InvalidUnwrap:
            _fail("OperationError", "AES-KW: the data could not be unwrapped (wrong key or corrupted data)")
        except ValueError as exc:
            _fail("OperationError", f"AES-KW: {exc}")
    _fail("NotSupportedError", f"{name} does not encrypt")


# ---- signatures -------------------------------------------------------------------------------------------------

def _sign(alg: dict[str, Any], key: Key, data: bytes) -> bytes:
    name = alg["name"]
    if name == "HMAC":
        mac = hmac.HMAC(key.material, _hash(key.algorithm["hash"]["name"]))
        mac.update(data)
        return mac.finalize()
    if key.type != "private":
        _fail("InvalidAccessError", f"{name} signs with a private key")
    if name == "Ed25519":
        return key.material.sign(data)  # type: ignore[no-any-return]
    if name == "ECDSA":
        der = key.material.sign(data, ec.ECDSA(_hash(_hash_name(alg.get("hash")))))
        r, s = decode_dss_signature(der)
        size = _CURVE_BYTES[key.algorithm["namedCurve"]]
        return _int_bytes(r, size) + _int_bytes(s, size)
    return key.material.sign(data, _rsa_padding(alg, key), _hash(key.algorithm["hash"]["name"]))  # type: ignore


def _rsa_padding(alg: dict[str, Any], key: Key) -> apadding.AsymmetricPadding:
    if alg["name"] == "RSA-PSS":
        salt = _int(alg, "saltLength") or 0
        if salt < 0:
            _fail("TypeError", "RSA-PSS: saltLength must not be negative")
        return apadding.PSS(apadding.MGF1(_hash(key.algorithm["hash"]["name"])), salt)
    return apadding.PKCS1v15()


def _verify(alg: dict[str, Any], key: Key, signature: bytes, data: bytes) -> bool:
    name = alg["name"]
    if name == "HMAC":
        mac = hmac.HMAC(key.material, _hash(key.algorithm["hash"]["name"]))
        mac.update(data)
        try:
            mac.verify(signature)
            return True
        except InvalidSignature:
            return False
    if key.type != "public":
        _fail("InvalidAccessError", f"{name} verifies with a public key")
    try:
        if name == "Ed25519":
            key.material.verify(signature, data)
        elif name == "ECDSA":
            size = _CURVE_BYTES[key.algorithm["namedCurve"]]
            if len(signature) != 2 * size:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                       int.from_bytes(signature[size:], "big"))
            key.material.verify(der, data, ec.ECDSA(_hash(_hash_name(alg.get("hash")))))
        else:
            padder = _rsa_padding(alg, key)
            key.material.verify(signature, data, padder, _hash(key.algorithm["hash"]["name"]))
        return True
    except (InvalidSignature, ValueError):
        return False


# ---- key generation and import -------------------------------------------------------------------------------

def _secret_algorithm(alg: dict[str, Any], bits: int | None) -> dict[str, Any]:
    name = alg["name"]
    if name in _AES:
        if bits not in (128, 192, 256):
            _fail("DataError" if bits is not None else "OperationError",
                  f"{name}: key length must be 128, 192 or 256 bits, got {bits}")
        return {"name": name, "length": bits}
    if name == "HMAC":
        hash_name = _hash_name(alg.get("hash"))
        return {"name": name, "hash": {"name": hash_name}, "length": bits}
    return {"name": name}


def _hmac_default_bits(hash_name: str) -> int:
    return 1024 if hash_name in ("SHA-384", "SHA-512") else 512


def _rsa_check(bits: int) -> None:
    if not RSA_BITS[0] <= bits <= RSA_BITS[1]:
        _fail("DataError", f"RSA: the modulus must be {RSA_BITS[0]}..{RSA_BITS[1]} bits, got {bits}")


def _asym_algorithm(name: str, alg: dict[str, Any], material: Any) -> dict[str, Any]:
    """The ``algorithm`` of an imported or generated public or private key, checked against its material."""
    if name in _RSA:
        if not isinstance(material, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            _fail("DataError", f"{name}: the key data is not an RSA key")
        numbers = material.public_key().public_numbers() if isinstance(material, rsa.RSAPrivateKey) \
            else material.public_numbers()
        _rsa_check(material.key_size)
        return {"name": name, "modulusLength": material.key_size, "publicExponent": b64(_int_bytes(numbers.e)),
                "hash": {"name": _hash_name(alg.get("hash"))}}
    if name in ("ECDSA", "ECDH"):
        curve = alg.get("namedCurve")
        if curve not in _CURVES:
            _fail("NotSupportedError" if isinstance(curve, str) else "TypeError",
                  f"{name}: namedCurve must be P-256, P-384 or P-521, got {curve!r}")
        if not isinstance(material, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
            _fail("DataError", f"{name}: the key data is not an EC key")
        if not isinstance(material.curve, _CURVES[curve]):
            _fail("DataError", f"{name}: the key is on {material.curve.name}, not {curve}")
        return {"name": name, "namedCurve": curve}
    kinds = {"Ed25519": (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey),
             "X25519": (x25519.X25519PrivateKey, x25519.X25519PublicKey)}[name]
    if not isinstance(material, kinds):
        _fail("DataError", f"{name}: the key data is not an {name} key")
    return {"name": name}


def _key_type(material: Any) -> str:
    private = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, x25519.X25519PrivateKey)
    return "private" if isinstance(material, private) else "public"


class CryptoOps(Capability):
    """The ``crypto_*`` operations and the plugin's key table."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table = KeyTable(limit=MAX_KEYS)

    def sync_ops(self) -> dict[str, Op]:
        return {"crypto_key_drop": self.table.drop}

    def async_ops(self) -> dict[str, Op]:
        ops: dict[str, Callable[..., Any]] = {
            "crypto_digest": self._digest, "crypto_encrypt": self._encrypt, "crypto_decrypt": self._decrypt,
            "crypto_sign": self._sign, "crypto_verify": self._verify, "crypto_generate_key": self._generate,
            "crypto_derive_bits": self._derive_bits, "crypto_derive_key": self._derive_key,
            "crypto_import_key": self._import, "crypto_export_key": self._export, "crypto_wrap_key": self._wrap,
            "crypto_unwrap_key": self._unwrap,
        }
        return {name: _answered(fn) for name, fn in ops.items()}

    def close_all(self) -> None:
        self.table.keys.clear()

    # -- the methods of SubtleCrypto, one each

    def _digest(self, alg: Any, data: Any) -> str:
        name = _normalize(alg, "digest")["name"]
        h = hashes.Hash(_hash(name))
        h.update(_bytes(data, "data"))
        return b64(h.finalize())

    def _encrypt(self, alg: Any, handle: Any, data: Any) -> str:
        alg = _normalize(alg, "encrypt")
        key = self.table.get(handle)
        _need(key, alg["name"], "encrypt")
        return b64(_cipher(alg, key, _bytes(data, "data"), True))

    def _decrypt(self, alg: Any, handle: Any, data: Any) -> str:
        alg = _normalize(alg, "decrypt")
        key = self.table.get(handle)
        _need(key, alg["name"], "decrypt")
        return b64(_cipher(alg, key, _bytes(data, "data"), False))

    def _sign(self, alg: Any, handle: Any, data: Any) -> str:
        alg = _normalize(alg, "sign")
        key = self.table.get(handle)
        _need(key, alg["name"], "sign")
        return b64(_sign(alg, key, _bytes(data, "data")))

    def _verify(self, alg: Any, handle: Any, signature: Any, data: Any) -> bool:
        alg = _normalize(alg, "verify")
        key = self.table.get(handle)
        _need(key, alg["name"], "verify")
        return _verify(alg, key, _bytes(signature, "signature"), _bytes(data, "data"))

    def _generate(self, alg: Any, extractable: Any, usages: Any) -> dict[str, Any]:
        alg = _normalize(alg, "generateKey")
        name = alg["name"]
        extractable = bool(extractable)
        if name in _SECRET_ONLY:
            if name == "HMAC":
                hash_name = _hash_name(alg.get("hash"))
                bits = _int(alg, "length", required=False, default=_hmac_default_bits(hash_name)) or 0
                if not 0 < bits <= MAX_SECRET * 8:
                    _fail("OperationError", f"HMAC: length must be 1..{MAX_SECRET * 8} bits")
            else:
                bits = _int(alg, "length") or 0
                if bits not in (128, 192, 256):
                    _fail("OperationError", f"{name}: length must be 128, 192 or 256 bits")
            checked = _check_usages(name, "secret", usages)
            if not checked:
                _fail("SyntaxError", "Usages cannot be empty when creating a key.")
            raw = bytearray(os.urandom(-(-bits // 8)))
            if bits % 8:
                raw[-1] &= (0xFF << (8 - bits % 8)) & 0xFF
            return self.table.add(Key("secret", extractable, _secret_algorithm(alg, bits), checked, bytes(raw)))
        public_usages = _USAGES[name][1]
        private_usages = _USAGES[name][0]
        if not isinstance(usages, list) or not all(isinstance(u, str) for u in usages):
            _fail("TypeError", "keyUsages must be a sequence of KeyUsage strings")
        bad = [u for u in usages if u not in public_usages | private_usages]
        if bad:
            _fail("SyntaxError", f"Cannot create a key using the specified key usages: {name} allows "
                                 f"{sorted(public_usages | private_usages)}, got {bad}")
        private: Any
        if name in _RSA:
            bits = _int(alg, "modulusLength") or 0
            exponent = int.from_bytes(_bytes(alg.get("publicExponent"), "publicExponent", 16), "big")
            _hash_name(alg.get("hash"))
            if not RSA_BITS[0] <= bits <= MAX_RSA_GENERATE_BITS or bits % 8:
                _fail("OperationError", f"{name}: modulusLength must be a multiple of 8 in {RSA_BITS[0]}.."
                                        f"{MAX_RSA_GENERATE_BITS} bits to generate (keys up to {RSA_BITS[1]} bits "
                                        "can be imported)")
            if exponent not in (3, 65537):
                _fail("OperationError", f"{name}: publicExponent must be 3 or 65537 ([1, 0, 1])")
            private = rsa.generate_private_key(exponent, bits)
        elif name in ("ECDSA", "ECDH"):
            curve = alg.get("namedCurve")
            if curve not in _CURVES:
                _fail("NotSupportedError" if isinstance(curve, str) else "TypeError",
                      f"{name}: namedCurve must be P-256, P-384 or P-521")
            private = ec.generate_private_key(_CURVES[curve]())
        elif name == "Ed25519":
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            private = x25519.X25519PrivateKey.generate()
        algorithm = _asym_algorithm(name, alg, private)
        private_list = [u for u in dict.fromkeys(usages) if u in private_usages]
        if not private_list:
            _fail("SyntaxError", "Usages cannot be empty when creating a key.")
        public_list = [u for u in dict.fromkeys(usages) if u in public_usages]
        if len(self.table.keys) + 2 > self.table.limit:
            self.table.add(Key("public", True, {}, [], None))  # fails with the table's message
        return {"publicKey": self.table.add(Key("public", True, algorithm, public_list, private.public_key())),
                "privateKey": self.table.add(Key("private", extractable, algorithm, private_list, private))}

    def _derive_bits(self, alg: Any, handle: Any, length: Any) -> str:
        alg = _normalize(alg, "deriveBits")
        key = self.table.get(handle)
        _need(key, alg["name"], "deriveBits")
        if length is not None and (isinstance(length, bool) or not isinstance(length, int | float)):
            _fail("TypeError", "length must be a number or null")
        return b64(self._bits(alg, key, None if length is None else int(length)))

    def _bits(self, alg: dict[str, Any], key: Key, length: int | None) -> bytes:
        name = alg["name"]
        if name in ("ECDH", "X25519"):
            public = self.table.get(alg.get("public"))
            if public.type != "public" or public.algorithm["name"] != name:
                _fail("InvalidAccessError", f"{name}: public must be a {name} public key")
            if name == "ECDH" and public.algorithm["namedCurve"] != key.algorithm["namedCurve"]:
                _fail("InvalidAccessError", "ECDH: the public key is on another curve")
            if key.type != "private":
                _fail("InvalidAccessError", f"{name}: the base key must be a private key")
            try:
                if name == "ECDH":
                    secret = key.material.exchange(ec.ECDH(), public.material)
                else:
                    secret = key.material.exchange(public.material)
            except ValueError as exc:
                _fail("OperationError", f"{name}: {exc}")
            if length is None:
                return secret  # type: ignore[no-any-return]
            if length > len(secret) * 8:
                _fail("OperationError", f"{name}: length {length} is more than the {len(secret) * 8} bits it yields")
            return _truncate(secret, length)
        if length is None or length % 8 or length <= 0:
            _fail("OperationError", f"{name}: length must be a positive multiple of 8, got {length}")
        hash_name = _hash_name(alg.get("hash"))
        salt = _bytes(alg.get("salt"), "salt")
        if name == "HKDF":
            info = _bytes(alg.get("info"), "info")
            if length // 8 > 255 * _hash(hash_name).digest_size:
                _fail("OperationError", f"HKDF: length is more than 255 times the hash's size ({length} bits)")
            return HKDF(_hash(hash_name), length // 8, salt, info).derive(key.material)
        iterations = _int(alg, "iterations") or 0
        if iterations <= 0:
            _fail("OperationError", "PBKDF2: iterations must be at least 1")
        blocks = -(-length // 8 // _hash(hash_name).digest_size)
        if iterations * blocks > MAX_PBKDF2_WORK:
            _fail("OperationError", f"PBKDF2: {iterations} iterations for {length} bits is more work than kplug_lab "
                                    f"does in one call (iterations times {_hash(hash_name).digest_size * 8}-bit "
                                    f"blocks at most {MAX_PBKDF2_WORK})")
        return PBKDF2HMAC(_hash(hash_name), length // 8, salt, iterations).derive(key.material)

    def _key_length(self, derived: Any) -> int | None:
        derived = _normalize(derived, "get key length")
        name = derived["name"]
        if name in _AES:
            bits = _int(derived, "length")
            if bits not in (128, 192, 256):
                _fail("OperationError", f"{name}: length must be 128, 192 or 256 bits")
            return bits
        if name == "HMAC":
            bits = _int(derived, "length", required=False,
                        default=_hmac_default_bits(_hash_name(derived.get("hash"))))
            if not bits or bits <= 0:
                _fail("TypeError", "HMAC: length must be positive")
            return bits
        return None

    def _derive_key(self, alg: Any, handle: Any, derived: Any, extractable: Any, usages: Any) -> dict[str, Any]:
        alg = _normalize(alg, "deriveBits")
        derived = _normalize(derived, "importKey")
        length = self._key_length(derived)
        key = self.table.get(handle)
        _need(key, alg["name"], "deriveKey")
        secret = self._bits(alg, key, length)
        return self._import_key("raw", secret, derived, extractable, usages)

    def _import(self, fmt: Any, data: Any, alg: Any, extractable: Any, usages: Any) -> dict[str, Any]:
        if fmt == "jwk":
            if not isinstance(data, dict):
                _fail("TypeError", "keyData must be a JsonWebKey object for the jwk format")
            return self._import_key(fmt, data, alg, extractable, usages)
        return self._import_key(fmt, _bytes(data, "keyData"), alg, extractable, usages)

    def _import_key(self, fmt: Any, data: Any, alg: Any, extractable: Any, usages: Any) -> dict[str, Any]:
        alg = _normalize(alg, "importKey")
        name = alg["name"]
        extractable = bool(extractable)
        if fmt not in ("raw", "pkcs8", "spki", "jwk"):
            _fail("TypeError", f"format must be raw, pkcs8, spki or jwk, got {fmt!r}")
        if isinstance(usages, list) and all(isinstance(u, str) for u in usages):
            usages = list(dict.fromkeys(usages))
        if fmt == "jwk":
            material, kind = _from_jwk(name, alg, data, extractable, usages)
        elif name in _SECRET_ONLY:
            if fmt != "raw":
                _fail("NotSupportedError", f"{name}: secret keys import as raw or jwk, not {fmt}")
            material, kind = data, "secret"
        else:
            material, kind = _from_der_or_raw(name, alg, fmt, data)
        checked = _check_usages(name, kind, usages)
        if kind != "public" and not checked:
            _fail("SyntaxError", "Usages cannot be empty when creating a key.")
        if kind == "secret":
            if name in _KDF and extractable:
                _fail("SyntaxError", f"{name} keys cannot be extractable")
            if not material or (len(material) > MAX_SECRET and name not in _AES):
                _fail("DataError", f"{name}: the key must be 1..{MAX_SECRET} bytes")
            bits = len(material) * 8
            if name == "HMAC":
                declared = _int(alg, "length", required=False)
                if declared is not None:
                    if not bits - 8 < declared <= bits:
                        _fail("DataError", f"HMAC: length {declared} does not fit {len(material)} bytes of key")
                    bits = declared
            algorithm = _secret_algorithm(alg, bits if name in ("HMAC", *_AES) else None)
            if name in _KDF:
                algorithm = {"name": name}
            return self.table.add(Key("secret", extractable, algorithm, checked, material))
        algorithm = _asym_algorithm(name, alg, material)
        return self.table.add(Key(kind, True if kind == "public" else extractable, algorithm, checked, material))

    def _export(self, fmt: Any, handle: Any) -> Any:
        key = self.table.get(handle)
        if not key.extractable:
            _fail("InvalidAccessError", "key is not extractable")
        return _export(fmt, key)

    def _wrap(self, fmt: Any, handle: Any, wrapping: Any, alg: Any) -> str:
        alg = _normalize(alg, "wrapKey")
        wrapper = self.table.get(wrapping)
        _need(wrapper, alg["name"], "wrapKey")
        key = self.table.get(handle)
        if not key.extractable:
            _fail("InvalidAccessError", "key is not extractable")
        exported = _export(fmt, key)
        data = json.dumps(exported).encode("utf-8") if fmt == "jwk" else base64.b64decode(exported)
        return b64(_cipher(alg, wrapper, data, True))

    def _unwrap(self, fmt: Any, wrapped: Any, handle: Any, alg: Any, key_alg: Any, extractable: Any,
                usages: Any) -> dict[str, Any]:
        alg = _normalize(alg, "unwrapKey")
        _normalize(key_alg, "importKey")
        unwrapper = self.table.get(handle)
        _need(unwrapper, alg["name"], "unwrapKey")
        data = _cipher(alg, unwrapper, _bytes(wrapped, "wrappedKey"), False)
        if fmt == "jwk":
            try:
                jwk = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                _fail("DataError", "the unwrapped data is not a JSON Web Key")
            return self._import(fmt, jwk, key_alg, extractable, usages)
        return self._import_key(fmt, data, key_alg, extractable, usages)


def _answered(fn: Callable[..., Any]) -> Op:
    """An operation that never raises: ``{"value": ...}`` or ``{"error": name, "message": ...}``."""

    def op(*args: Any) -> dict[str, Any]:
        try:
            return {"value": fn(*args)}
        except CryptoFailure as exc:
            return {"error": exc.name, "message": str(exc)}
        except (ValueError, TypeError, OverflowError) as exc:
            return {"error": "OperationError", "message": f"The operation failed: {exc}"}

    return op


def _truncate(data: bytes, bits: int) -> bytes:
    out = bytearray(data[:-(-bits // 8)])
    if bits % 8:
        out[-1] &= (0xFF << (8 - bits % 8)) & 0xFF
    return bytes(out)


# ---- formats -----------------------------------------------------------------------------------------------------

def _from_der_or_raw(name: str, alg: dict[str, Any], fmt: str, data: bytes) -> tuple[Any, str]:
    try:
        if fmt == "spki":
            return serialization.load_der_public_key(data), "public"
        if fmt == "pkcs8":
            return serialization.load_der_private_key(data, None), "private"
    except (ValueError, TypeError) as exc:
        _fail("DataError", f"{name}: the {fmt} key data is not valid: {exc}")
    except Exception as exc:  # an unsupported key type
        _fail("DataError", f"{name}: the {fmt} key data is not supported: {exc}")
    if name in ("ECDSA", "ECDH"):
        curve = alg.get("namedCurve")
        if curve not in _CURVES:
            _fail("NotSupportedError" if isinstance(curve, str) else "TypeError",
                  f"{name}: namedCurve must be P-256, P-384 or P-521")
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[curve](), data), "public"
        except ValueError:
            _fail("DataError", f"{name}: the raw key is not a point on {curve}")
    if name in ("Ed25519", "X25519"):
        if len(data) != 32:
            _fail("DataError", f"{name}: a raw public key is 32 bytes")
        cls = ed25519.Ed25519PublicKey if name == "Ed25519" else x25519.X25519PublicKey
        return cls.from_public_bytes(data), "public"
    _fail("NotSupportedError", f"{name}: keys do not import as {fmt}")


def _jwk_alg(key: Key) -> str | None:
    algorithm = key.algorithm
    name = algorithm["name"]
    if name in _AES:
        return f"A{algorithm['length']}{name[4:]}"
    suffix = _JWK_HASH_SUFFIX.get(algorithm.get("hash", {}).get("name", ""))
    if suffix is None:
        return None
    if name == "HMAC":
        return f"HS{suffix}"
    if name == "RSA-OAEP":
        return "RSA-OAEP" if suffix == "1" else f"RSA-OAEP-{suffix}"
    return ("RS" if name == "RSASSA-PKCS1-v1_5" else "PS") + suffix


def _export(fmt: Any, key: Key) -> Any:
    name = key.algorithm["name"]
    material = key.material
    if fmt == "jwk":
        jwk: dict[str, Any] = {}
        if key.type == "secret":
            if name in _KDF:
                _fail("NotSupportedError", f"{name} keys do not export")
            jwk = {"kty": "oct", "k": _b64u(material)}
        elif name in _RSA:
            priv = material if key.type == "private" else None
            pub = (priv.public_key() if priv else material).public_numbers()
            jwk = {"kty": "RSA", "n": _b64u(_int_bytes(pub.n)), "e": _b64u(_int_bytes(pub.e))}
            if priv is not None:
                p = priv.private_numbers()
                jwk.update({m: _b64u(_int_bytes(v)) for m, v in (("d", p.d), ("p", p.p), ("q", p.q),
                                                                  ("dp", p.dmp1), ("dq", p.dmq1), ("qi", p.iqmp))})
        elif name in ("ECDSA", "ECDH"):
            size = _CURVE_BYTES[key.algorithm["namedCurve"]]
            pub_ec = (material.public_key() if key.type == "private" else material).public_numbers()
            jwk = {"kty": "EC", "crv": key.algorithm["namedCurve"], "x": _b64u(_int_bytes(pub_ec.x, size)),
                   "y": _b64u(_int_bytes(pub_ec.y, size))}
            if key.type == "private":
                jwk["d"] = _b64u(_int_bytes(material.private_numbers().private_value, size))
        else:
            public = material.public_key() if key.type == "private" else material
            jwk = {"kty": "OKP", "crv": name, "x": _b64u(public.public_bytes_raw())}
            if key.type == "private":
                jwk["d"] = _b64u(material.private_bytes_raw())
        alg = _jwk_alg(key)
        if alg and name not in ("AES-ECB",):
            jwk["alg"] = alg
        jwk["key_ops"] = list(key.usages)
        jwk["ext"] = key.extractable
        return jwk
    if fmt == "raw":
        if key.type == "secret":
            if name in _KDF:
                _fail("NotSupportedError", f"{name} keys do not export")
            return b64(material)
        if key.type == "public" and name in ("ECDSA", "ECDH"):
            return b64(material.public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint))
        if key.type == "public" and name in ("Ed25519", "X25519"):
            return b64(material.public_bytes_raw())
        _fail("InvalidAccessError", f"a {name} {key.type} key does not export as raw")
    if fmt == "spki":
        if key.type != "public":
            _fail("InvalidAccessError", "only public keys export as spki")
        return b64(material.public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    if fmt == "pkcs8":
        if key.type != "private":
            _fail("InvalidAccessError", "only private keys export as pkcs8")
        return b64(material.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    _fail("TypeError", f"format must be raw, pkcs8, spki or jwk, got {fmt!r}")


def _from_jwk(name: str, alg: dict[str, Any], jwk: dict[str, Any], extractable: bool,
              usages: Any) -> tuple[Any, str]:
    kty = jwk.get("kty")
    if jwk.get("ext") is False and extractable:
        _fail("DataError", "JWK: ext is false but the key is asked to be extractable")
    if "key_ops" in jwk:
        ops = jwk["key_ops"]
        if not isinstance(ops, list) or not isinstance(usages, list) or any(u not in ops for u in usages):
            _fail("DataError", "JWK: key_ops does not include every requested usage")
    use = jwk.get("use")
    if use is not None and usages:
        wants = "sig" if name in ("HMAC", "RSASSA-PKCS1-v1_5", "RSA-PSS", "ECDSA", "Ed25519") else "enc"
        if use != wants:
            _fail("DataError", f"JWK: use must be {wants!r} for {name}")
    if name in _SECRET_ONLY:
        if kty != "oct":
            _fail("DataError", f"JWK: kty must be 'oct' for {name}")
        secret = _unb64u(jwk.get("k"), "k")
        return secret, "secret"
    if name in _RSA:
        if kty != "RSA":
            _fail("DataError", f"JWK: kty must be 'RSA' for {name}")
        n = int.from_bytes(_unb64u(jwk.get("n"), "n"), "big")
        e = int.from_bytes(_unb64u(jwk.get("e"), "e"), "big")
        _rsa_check(n.bit_length())
        public_numbers = rsa.RSAPublicNumbers(e, n)
        try:
            if "d" not in jwk:
                return public_numbers.public_key(), "public"
            values = {m: int.from_bytes(_unb64u(jwk.get(m), m), "big") for m in ("d", "p", "q", "dp", "dq", "qi")}
            private = rsa.RSAPrivateNumbers(values["p"], values["q"], values["d"], values["dp"], values["dq"],
                                            values["qi"], public_numbers).private_key()
            return private, "private"
        except ValueError as exc:
            _fail("DataError", f"JWK: not a valid RSA key: {exc}")
    if name in ("ECDSA", "ECDH"):
        crv = jwk.get("crv")
        if kty != "EC" or crv not in _CURVES or crv != alg.get("namedCurve"):
            _fail("DataError", f"JWK: kty must be 'EC' and crv must be the namedCurve {alg.get('namedCurve')!r}")
        size = _CURVE_BYTES[crv]
        x, y = _unb64u(jwk.get("x"), "x"), _unb64u(jwk.get("y"), "y")
        if len(x) != size or len(y) != size:
            _fail("DataError", f"JWK: x and y must be {size} bytes for {crv}")
        try:
            pub = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), _CURVES[crv]())
            if "d" not in jwk:
                return pub.public_key(), "public"
            d = _unb64u(jwk.get("d"), "d")
            if len(d) != size:
                _fail("DataError", f"JWK: d must be {size} bytes for {crv}")
            return ec.EllipticCurvePrivateNumbers(int.from_bytes(d, "big"), pub).private_key(), "private"
        except ValueError as exc:
            _fail("DataError", f"JWK: not a valid {crv} key: {exc}")
    if kty != "OKP" or jwk.get("crv") != name:
        _fail("DataError", f"JWK: kty must be 'OKP' and crv {name!r}")
    x_raw = _unb64u(jwk.get("x"), "x")
    if len(x_raw) != 32:
        _fail("DataError", f"JWK: x must be 32 bytes for {name}")
    if "d" in jwk:
        d_raw = _unb64u(jwk.get("d"), "d")
        if len(d_raw) != 32:
            _fail("DataError", f"JWK: d must be 32 bytes for {name}")
        priv_cls = ed25519.Ed25519PrivateKey if name == "Ed25519" else x25519.X25519PrivateKey
        private_okp = priv_cls.from_private_bytes(d_raw)
        if private_okp.public_key().public_bytes_raw() != x_raw:
            _fail("DataError", "JWK: x is not the public key of d")
        return private_okp, "private"
    pub_cls = ed25519.Ed25519PublicKey if name == "Ed25519" else x25519.X25519PublicKey
    return pub_cls.from_public_bytes(x_raw), "public"
