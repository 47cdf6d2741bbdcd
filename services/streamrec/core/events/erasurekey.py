"""The keyed hash that stands for an erased id: HMAC-SHA256 under a per-deployment secret.

Tombstones (in every snapshot) and erasure records (on the interactions topic) must keep an
erased id erased without holding the id itself (docs/feedback.md, "Forgetting"). They hold
``HMAC-SHA256(key, kind || 0x00 || id)`` instead (RFC 2104 over SHA-256, Python's ``hmac``):
a component that sees an id (an event, a catalogue record) hashes it and looks the digest up;
nobody can go from a digest back to the id without the key, and without the key a guess
cannot be checked either. The kind is part of the message, so a user and an item with the
same id have unrelated digests.

The key is the setting ``erasure_key`` (``STREAMREC_ERASURE_KEY``, from a Kubernetes Secret in
the operator's path); when it is unset, the snapshot store keeps one, generated once
(``adapters/erasurekeys.py``). Every component of one deployment must use the same key: a
trainer and a replica with different keys cannot read each other's tombstones.

Pure: no I/O. Thread-safe (the cache is ``functools.lru_cache``'s, which is).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from functools import lru_cache

__all__ = ["MIN_KEY_BYTES", "ErasureHasher", "KeyUnavailable", "check_key", "new_key"]

#: The shortest accepted key (UTF-8 bytes): 128 bits of a random hex string.
MIN_KEY_BYTES = 32
#: Digests remembered per hasher (ids seen again and again: every event is checked).
CACHE_SIZE = 1 << 18

#: Seconds before a store that could not give the key is asked again.
RETRY_S = 5.0


class KeyUnavailable(RuntimeError):
    """The key could not be obtained yet (the store holding it is unreachable): retry."""


def new_key() -> str:
    """A fresh key: 256 random bits as 64 hex characters (``secrets.token_hex``)."""
    return secrets.token_hex(32)


def check_key(key: str) -> str:
    """``key`` if it is long enough; ``ValueError`` saying what is needed otherwise."""
    if len(key.strip().encode("utf-8")) < MIN_KEY_BYTES:
        raise ValueError(f"the erasure key must hold at least {MIN_KEY_BYTES} bytes (for "
                         "example `openssl rand -hex 32`)")
    return key.strip()


class ErasureHasher:
    """Digests of ids under one key: ``digest(kind, id)`` is 64 lowercase hex characters.

    ``key`` is the key itself, or a callable giving it (the store's; called on first use and
    again after a failure, which it signals with `KeyUnavailable` or ``OSError``).
    """

    def __init__(self, key: str | Callable[[], str]) -> None:
        self._source = key
        self._key: bytes | None = None
        self._lock = threading.Lock()
        self._failed: tuple[float, KeyUnavailable] | None = None  # (retry after, the error)
        if isinstance(key, str):
            self._key = check_key(key).encode("utf-8")
        #: ``digest(kind, id)``: the keyed hash of ``id`` as a ``kind`` ("user" or "item"),
        #: 64 lowercase hex characters. The cached function itself, not a method around it:
        #: it runs for every event the trainer and the fold-in check.
        self.digest: Callable[[str, str], str] = lru_cache(maxsize=CACHE_SIZE)(self._compute)

    def key(self) -> bytes:
        """The key's bytes, obtaining it first if needed (``KeyUnavailable`` if it cannot)."""
        key = self._key
        if key is not None:
            return key
        with self._lock:
            if self._key is None:
                assert callable(self._source)
                # After a failure the store is asked again only RETRY_S seconds later: a fold-in
                # that polls many times a second must not ask the store each time.
                if self._failed is not None and time.monotonic() < self._failed[0]:
                    raise self._failed[1]
                try:
                    self._key = check_key(self._source()).encode("utf-8")
                except KeyUnavailable as e:
                    self._failed = (time.monotonic() + RETRY_S, e)
                    raise
                except (OSError, ValueError) as e:
                    error = KeyUnavailable(f"no erasure key yet: {e}")
                    self._failed = (time.monotonic() + RETRY_S, error)
                    raise error from e
            return self._key

    def _compute(self, kind: str, ident: str) -> str:
        message = kind.encode("ascii") + b"\x00" + ident.encode("utf-8")
        return hmac.digest(self.key(), message, hashlib.sha256).hex()

    def key_id(self) -> str:
        """A short public fingerprint of the key (logs, the snapshot manifest): 16 hex."""
        return hmac.digest(self.key(), b"streamrec erasure key id", hashlib.sha256).hex()[:16]
