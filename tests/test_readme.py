"""The README's snippets run as printed.

A fenced ``python`` block right after lines ``<!-- run: NAME -->`` is run here, under each
NAME given; blocks of the same NAME run one after another in one namespace, in README
order. A pair of names
``X/before`` and ``X/after`` must also print the same text: code as a user had it, and the
same code on raysession. Blocks run in this process, on the module's real local Ray.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections import defaultdict
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(
    r"(?P<marks>(?:<!-- run: [\w./-]+ -->\s*\n)+)```python\n(?P<code>.*?)\n```", re.S
)
_MARK = re.compile(r"<!-- run: ([\w./-]+) -->")


def _snippets() -> dict[str, str]:
    found: dict[str, list[str]] = defaultdict(list)
    for match in _BLOCK.finditer(README.read_text(encoding="utf-8")):
        for name in _MARK.findall(match["marks"]):
            found[name].append(match["code"])
    return {name: "\n\n".join(parts) for name, parts in found.items()}


SNIPPETS = _snippets()
PAIRS = sorted(
    name[: -len("/before")]
    for name in SNIPPETS
    if name.endswith("/before") and name[: -len("/before")] + "/after" in SNIPPETS
)


def _run(name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(SNIPPETS[name], f"README.md:{name}", "exec"), {"__name__": "__readme__"})
    return out.getvalue()


def test_the_readme_has_runnable_snippets() -> None:
    assert {"quickstart", "runtime-v2"} <= set(SNIPPETS)
    assert PAIRS == ["aer-primitives"]


@pytest.mark.parametrize("name", sorted(n for n in SNIPPETS if not n.endswith("/before")))
def test_snippet_runs(name: str, backend: object) -> None:
    printed = _run(name)
    assert printed.strip(), f"{name} printed nothing a reader could check"


@pytest.mark.parametrize("pair", PAIRS)
def test_before_and_after_print_the_same(pair: str, backend: object) -> None:
    assert _run(f"{pair}/before") == _run(f"{pair}/after")


def test_the_option_reference_lists_every_option_with_its_type_and_default() -> None:
    from raysession._option_reference import reference

    text = README.read_text(encoding="utf-8")
    section = text.split("<!-- options: begin -->\n", 1)[1].split("<!-- options: end -->", 1)[0]
    assert section.strip() == reference().strip(), (
        "README's option reference is out of date: paste `python -m raysession._option_reference`"
    )
    assert "`raysession.max_retries` | int | `0` |" in section
