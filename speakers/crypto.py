"""Secrets: encryption of embeddings at rest, and API keys.

Embeddings (envelope encryption)
    AES-256-GCM (authenticated) with a random 96-bit nonce per message. The associated data
    names the row and the model version (``Enrollment.crypto_context()``), so a ciphertext
    cannot be moved to another row or relabelled with another model version. Each row stores
    the id of the key that sealed it: its tenant's **data key** (:class:`DataKey`), a random
    256-bit key stored only wrapped (AES-GCM) by the deployment's primary key. Deployment keys
    come from ``settings.VOICEPRINT_ENCRYPTION_KEYS``, newest first: the first wraps, all unwrap;
    ``manage.py rotate_keys`` re-wraps every data key (and re-seals rows still under a deployment
    key, as every row was before tenants). Destroying a tenant's wrapped data key makes all its
    ciphertexts unreadable at once (crypto-shredding). Which data key a key id names is found by
    the resolver :mod:`speakers.tenancy` registers (:func:`register_data_key_resolver`).

API keys
    ``vp_<prefix>.<secret>``: the prefix (public, unique) finds the row, the SHA-256 of the
    whole key is stored and compared in constant time. The secret has 256 bits of entropy,
    so a fast hash is enough (no password stretching needed) and keeps requests quick.
    The plain key exists only in the return value of :func:`api_key_generate`.

Nothing here logs a key or a vector.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_FORMAT_V1 = b"\x01"
_NONCE_BYTES = 12
_VECTOR_DTYPE = np.dtype("<f4")
API_KEY_PREFIX = "vp_"


class DecryptionError(Exception):
    """A ciphertext cannot be opened: unknown key id, wrong key, or tampered data."""


class KeyNotConfigured(DecryptionError):
    """The row names a key id that VOICEPRINT_ENCRYPTION_KEYS does not hold (a configuration fault)."""


class CiphertextCorrupt(DecryptionError):
    """The row's bytes do not authenticate under its own key: this one row is damaged or tampered with."""


@dataclass(frozen=True)
class Sealed:
    key_id: str
    ciphertext: bytes


@dataclass(frozen=True)
class Keyring:
    primary_id: str
    keys: dict[str, AESGCM]


def key_id_for(key: bytes) -> str:
    """A short public name of a key: a hash of it, never the key itself."""
    return hashlib.sha256(b"voiceprint-key-id:" + key).hexdigest()[:16]


def encryption_key_id(encoded_key: str) -> str:
    """The key id of a configured (base64url) key."""
    return key_id_for(base64.urlsafe_b64decode(encoded_key.encode("ascii")))


@lru_cache(maxsize=1)
def keyring() -> Keyring:
    raw_keys = [base64.urlsafe_b64decode(k.encode("ascii")) for k in settings.VOICEPRINT_ENCRYPTION_KEYS]
    if not raw_keys:
        raise RuntimeError("VOICEPRINT_ENCRYPTION_KEYS is empty")
    keys = {key_id_for(raw): AESGCM(raw) for raw in raw_keys}
    return Keyring(primary_id=key_id_for(raw_keys[0]), keys=keys)


@receiver(setting_changed)
def _forget_keyring(*, setting: str, **_: object) -> None:
    if setting == "VOICEPRINT_ENCRYPTION_KEYS":
        keyring.cache_clear()


def generate_encryption_key() -> str:
    """A new random 256-bit key, base64url, for VOICEPRINT_ENCRYPTION_KEYS."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


# --- data keys (one per tenant), wrapped by the deployment's keys ---------------------------------

@dataclass(frozen=True)
class DataKey:
    """An unwrapped data key: its public id and the cipher (the key bytes never leave the cipher object)."""

    key_id: str
    aead: AESGCM


def data_key_new() -> bytes:
    """A new random 256-bit data key (raw: wrap it at once with :func:`data_key_wrap`)."""
    return AESGCM.generate_key(bit_length=256)


def data_key_of(raw: bytes) -> DataKey:
    return DataKey(key_id=key_id_for(raw), aead=AESGCM(raw))


def data_key_wrap(raw: bytes, *, context: bytes) -> Sealed:
    """Wrap a raw data key with the primary deployment key (``key_id``: the wrapping key's id)."""
    ring = keyring()
    nonce = os.urandom(_NONCE_BYTES)
    return Sealed(key_id=ring.primary_id,
                  ciphertext=_FORMAT_V1 + nonce + ring.keys[ring.primary_id].encrypt(nonce, raw, context))


def data_key_unwrap_raw(*, wrapping_id: str, wrapped: bytes, context: bytes) -> bytes:
    """The raw bytes of a wrapped data key (for re-wrapping and for :func:`data_key_unwrap`)."""
    aead = keyring().keys.get(wrapping_id)
    if aead is None:
        raise KeyNotConfigured(f"encryption key {wrapping_id!r} (which wraps a data key) is not configured")
    return _open(aead, bytes(wrapped), context)


def data_key_unwrap(*, wrapping_id: str, wrapped: bytes, context: bytes) -> DataKey:
    return data_key_of(data_key_unwrap_raw(wrapping_id=wrapping_id, wrapped=wrapped, context=context))


DataKeyResolver = Callable[[str], "DataKey | None"]
_resolvers: list[DataKeyResolver] = []


def register_data_key_resolver(resolver: DataKeyResolver) -> None:
    """``resolver(key_id)`` -> the data key with that id, or None (called when a key id is not a deployment key)."""
    if resolver not in _resolvers:
        _resolvers.append(resolver)


def _cipher_for(key_id: str) -> AESGCM:
    aead = keyring().keys.get(key_id)  # a row sealed before tenants: under a deployment key
    if aead is not None:
        return aead
    for resolver in _resolvers:
        found = resolver(key_id)
        if found is not None:
            return found.aead
    raise KeyNotConfigured(f"encryption key {key_id!r} is not configured (or its tenant's data key was destroyed)")


def _open(aead: AESGCM, data: bytes, context: bytes) -> bytes:
    if data[:1] != _FORMAT_V1 or len(data) < 1 + _NONCE_BYTES + 16:
        raise CiphertextCorrupt("unknown ciphertext format")
    try:
        return aead.decrypt(data[1:1 + _NONCE_BYTES], data[1 + _NONCE_BYTES:], context)
    except InvalidTag as exc:
        # The key id is a hash of the key, so the right key was used: the bytes or the row changed.
        raise CiphertextCorrupt("ciphertext does not authenticate (damaged or tampered)") from exc


# --- vectors ---------------------------------------------------------------------------------------

def blob_encrypt(plaintext: bytes, *, context: bytes, key: DataKey) -> Sealed:
    """Seal bytes (an audio fingerprint) with a tenant's data key, bound to ``context``."""
    nonce = os.urandom(_NONCE_BYTES)
    return Sealed(key_id=key.key_id, ciphertext=_FORMAT_V1 + nonce + key.aead.encrypt(nonce, plaintext, context))


def blob_decrypt(*, key_id: str, ciphertext: bytes, context: bytes) -> bytes:
    """Open bytes sealed by :func:`blob_encrypt`."""
    return _open(_cipher_for(key_id), bytes(ciphertext), context)


def vector_encrypt(vector: np.ndarray, *, context: bytes, key: DataKey) -> Sealed:
    """Seal a float32 vector of shape ``(D,)`` with a tenant's data key."""
    return blob_encrypt(np.ascontiguousarray(vector, dtype=_VECTOR_DTYPE).tobytes(), context=context, key=key)


def vector_decrypt(*, key_id: str, ciphertext: bytes, context: bytes) -> np.ndarray:
    """Open a vector sealed by :func:`vector_encrypt` (or, before tenants, by a deployment key). Returns ``(D,)``."""
    return np.frombuffer(blob_decrypt(key_id=key_id, ciphertext=ciphertext, context=context),
                         dtype=_VECTOR_DTYPE).astype(np.float32)


def blob_reseal(*, key_id: str, ciphertext: bytes, context: bytes, key: DataKey) -> Sealed:
    """Re-encrypt bytes under ``key`` (key rotation); checked to round-trip."""
    plaintext = blob_decrypt(key_id=key_id, ciphertext=ciphertext, context=context)
    sealed = blob_encrypt(plaintext, context=context, key=key)
    if blob_decrypt(key_id=sealed.key_id, ciphertext=sealed.ciphertext, context=context) != plaintext:
        raise DecryptionError("re-encrypted bytes do not round-trip")
    return sealed


def vector_reseal(*, key_id: str, ciphertext: bytes, context: bytes, key: DataKey) -> Sealed:
    """Re-encrypt under ``key`` (a tenant's data key); the vector is checked to round-trip."""
    vector = vector_decrypt(key_id=key_id, ciphertext=ciphertext, context=context)
    sealed = vector_encrypt(vector, context=context, key=key)
    if not np.array_equal(vector_decrypt(key_id=sealed.key_id, ciphertext=sealed.ciphertext,
                                         context=context), vector):
        raise DecryptionError("re-encrypted vector does not round-trip")
    return sealed


# --- API keys ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GeneratedApiKey:
    plain: str
    prefix: str
    hashed: str


def api_key_hash(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


def api_key_generate() -> GeneratedApiKey:
    prefix = secrets.token_hex(6)
    plain = f"{API_KEY_PREFIX}{prefix}.{secrets.token_urlsafe(32)}"
    return GeneratedApiKey(plain=plain, prefix=prefix, hashed=api_key_hash(plain))


def api_key_prefix(plain: str) -> str | None:
    """The lookup prefix of a presented key, or None if it is not shaped like one of ours."""
    if not plain.startswith(API_KEY_PREFIX) or "." not in plain:
        return None
    prefix = plain[len(API_KEY_PREFIX):].split(".", 1)[0]
    return prefix if 0 < len(prefix) <= 16 else None


def api_key_matches(plain: str, hashed: str) -> bool:
    return hmac.compare_digest(api_key_hash(plain), hashed)
