"""The README's option reference, made from the option models themselves.

``python -m raysession._option_reference`` prints it; ``tests/test_readme.py`` checks that
the README holds exactly this, so a new or changed option cannot go undocumented.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .options import EstimatorOptions, SamplerOptions


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is not None and getattr(origin, "__name__", "") == "Callable":
        return "callable"
    if origin is typing.Literal:
        return " \\| ".join(repr(arg) for arg in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(arg) for arg in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined:
        if field.default_factory is None:
            return "required"
        value = field.default_factory()
        return "(group)" if isinstance(value, BaseModel) else repr(value)
    value = field.default
    if isinstance(value, enum.Enum):
        value = value.value
    return repr(value)


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        dotted = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _rows(annotation, f"{dotted}.")
            continue
        text = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append((dotted, _type_name(annotation), _default(field), text))
    return rows


def reference() -> str:
    """The option reference: one Markdown table per primitive's options."""
    parts = []
    header = "| option | type | default | what it does |\n|---|---|---|---|"
    models: list[tuple[str, type[BaseModel]]] = [
        ("EstimatorOptions", EstimatorOptions),
        ("SamplerOptions", SamplerOptions),
    ]
    for title, model in models:
        parts.append(f"#### `{title}`\n\n{header}")
        parts += [f"| `{n}` | {t} | `{d}` | {w} |" for n, t, d, w in _rows(model, "")]
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference())
