"""Dataclasses that travel between Ray processes as one C-pickled blob.

Ray pickles task arguments with cloudpickle, whose Python-level pickler walks Qiskit's
containers (bindings and observables arrays) object by object; the C pickler does the
same work several times faster. A frozen dataclass whose ``__reduce__`` returns
:func:`as_blob` crosses as bytes, which Ray copies without walking.
"""

from __future__ import annotations

import pickle
from dataclasses import fields
from typing import Any


def as_blob(obj: Any) -> tuple[Any, ...]:
    """``__reduce__`` of a dataclass instance: its fields, C-pickled in one blob."""
    state = tuple(getattr(obj, f.name) for f in fields(obj))
    return (_from_blob, (type(obj), pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)))


def _from_blob(cls: type[Any], data: bytes) -> Any:
    return cls(*pickle.loads(data))
