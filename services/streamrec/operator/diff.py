"""Does a live object already hold every field we want? Decides whether to patch at all.

The API server adds defaults (``protocol: TCP``, probe timeouts, ``terminationMessagePath``),
other controllers add annotations and status, and quantities come back canonical (``0.5`` is
stored as ``500m``). So "unchanged" means: every field of the desired object is present in the
live one with an equal value, lists element by element with equal lengths, and quantities
under ``resources`` or ``sizeLimit`` compared by value. Fields only the live object has are
ignored.

A field dropped from the desired object (an Ingress losing its ``ingressClassName``) would
still "match", so :func:`with_applied_hash` stamps every child with a digest of its desired
form: dropping a field changes the digest, the object no longer matches, and server-side apply
removes the field we stopped applying.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from streamrec.operator.quantity import same_quantity

APPLIED_HASH_ANNOTATION = "streamrec.io/applied-hash"
_EMPTY: tuple[Any, ...] = (None, {}, [])


def with_applied_hash(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` annotated with a digest of everything else in it."""
    out = copy.deepcopy(dict(obj))
    annotations = out.setdefault("metadata", {}).setdefault("annotations", {})
    annotations.pop(APPLIED_HASH_ANNOTATION, None)
    digest = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()[:16]
    annotations[APPLIED_HASH_ANNOTATION] = digest
    return out


def matches(desired: Any, live: Any, path: tuple[str, ...] = ()) -> bool:
    """True if ``live`` contains ``desired`` (see the module docstring for the rules)."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(
            (value in _EMPTY and key not in live)
            or (key in live and matches(value, live[key], (*path, str(key))))
            for key, value in desired.items()
        )
    if isinstance(desired, Sequence) and not isinstance(desired, str):
        if not isinstance(live, Sequence) or isinstance(live, str) or len(live) != len(desired):
            return False
        return all(matches(d, lv, path) for d, lv in zip(desired, live, strict=True))
    if desired == live and type(desired) is type(live):
        return True
    return _is_quantity_path(path) and same_quantity(desired, live)


def _is_quantity_path(path: tuple[str, ...]) -> bool:
    return "resources" in path or (bool(path) and path[-1] == "sizeLimit")


def first_difference(desired: Any, live: Any, path: str = "") -> str | None:
    """The dotted path of the first desired field that ``live`` lacks, for logs."""
    if isinstance(desired, Mapping) and isinstance(live, Mapping):
        for key, value in desired.items():
            if value in _EMPTY and key not in live:
                continue
            if key not in live:
                return f"{path}.{key}"
            found = first_difference(value, live[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if matches(desired, live, tuple(p for p in path.split(".") if p)):
        return None
    return path or "."


def with_live_values(
    obj: Mapping[str, Any], live: Mapping[str, Any], paths: Sequence[tuple[str, ...]]
) -> dict[str, Any]:
    """A copy of ``obj`` holding the live object's values at ``paths`` (those present there)
    and the live ``metadata.resourceVersion``, so that applying it changes none of them and
    fails with 409 if the live object changed since it was read."""
    out: dict[str, Any] = copy.deepcopy(dict(obj))
    for path in paths:
        value: Any = live
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            continue
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    out["metadata"] = {**out["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]}
    return out
