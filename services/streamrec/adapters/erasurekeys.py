"""Where a deployment's erasure key comes from (``core/events/erasurekey.py``).

The setting ``erasure_key`` (``STREAMREC_ERASURE_KEY``; the operator fills it from a
Kubernetes Secret when the custom resource names one) wins. Without it, the snapshot store
keeps the key next to ``LATEST`` as ``ERASURE_KEY``: the first component that needs it
generates 256 random bits and creates the object only if it does not exist yet (an exclusive
create on a directory, ``If-None-Match: *`` on S3), then everyone reads what is stored, so the
trainer and every replica of the deployment agree on it without a setting. Whoever can read
the store can read this key; set ``erasure_key`` from a Secret to keep it elsewhere.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from streamrec.core.events.erasurekey import ErasureHasher, KeyUnavailable, check_key, new_key

from .storebase import StoreError

__all__ = ["ERASURE_KEY_NAME", "KeyStore", "erasure_hasher"]

#: The store object (next to LATEST) holding a generated key.
ERASURE_KEY_NAME = "ERASURE_KEY"


@runtime_checkable
class KeyStore(Protocol):
    """A store that can keep the generated erasure key (both built-in stores can)."""

    def create_if_absent(self, name: str, data: bytes) -> bytes:
        """Store ``data`` as ``name`` unless it exists; return what is stored now."""
        ...


def erasure_hasher(configured: str | None, store: object) -> ErasureHasher:
    """The hasher of this deployment: the configured key (``Config.erasure_key``), else the
    store's (obtained on first use; `KeyUnavailable` while the store cannot be reached)."""
    if configured:
        return ErasureHasher(configured)
    if not isinstance(store, KeyStore):
        raise KeyUnavailable(f"{store!r} cannot keep an erasure key: set erasure_key")

    def from_store() -> str:
        try:
            raw = store.create_if_absent(ERASURE_KEY_NAME, (new_key() + "\n").encode("ascii"))
        except StoreError as e:
            raise KeyUnavailable(f"cannot read {ERASURE_KEY_NAME} from {store!r}: {e}") from e
        try:
            return check_key(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise KeyUnavailable(f"{ERASURE_KEY_NAME} in {store!r} is unusable: {e}") from e

    return ErasureHasher(from_store)
