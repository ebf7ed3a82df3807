"""Property tests: the JSON Lines reader with orjson reads every file as the ``json`` reader
does: the same records (values and types), the same raw lines, and the same error for a bad
line.

Lines are generated as ``json.dumps`` writes them (NaN, huge integers, lone surrogates and
deep nesting included), sometimes damaged: a byte cut off, a stray byte, a line that is not an
object, a blank line, a carriage return.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from momentos.enrichment import frame as frame_module

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),  # lone surrogates included
    st.sampled_from(["ñ😡", "\u2028", "\x00\x1f", "ref 12345678901234567890", "-0.0"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
records = st.dictionaries(st.text(max_size=10), values, max_size=6)


@st.composite
def lines(draw: Any) -> bytes:
    text = json.dumps(draw(records), ensure_ascii=draw(st.booleans()))
    data = text.encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none"] * 6 + ["cut", "stray", "list", "blank", "cr", "deep"]))
    if damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "stray":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"}", b"{", b'"', b"\\"])) + data[at:]
    elif damage == "list":
        data = b"[" + data + b"]"
    elif damage == "blank":
        data = draw(st.sampled_from([b"", b"  ", b"\t"]))
    elif damage == "cr":
        data += b"\r"
    elif damage == "deep":
        depth = draw(st.sampled_from([10, 900, 1100, 5000]))
        data = b'{"d": ' + b"[" * depth + b"]" * depth + b"}"
    return data


def _read(path: Path, raw_bytes: bool) -> tuple[str, Any]:
    size = path.stat().st_size
    try:
        frame, raw = frame_module._read_jsonl_range(path, 0, size, 1, raw_bytes=raw_bytes)
    except (frame_module.TableFormatError, UnicodeDecodeError) as exc:
        return "error", (type(exc).__name__, str(exc))
    cells = {name: repr(frame[name].tolist()) for name in frame.columns}
    return "ok", (list(frame.columns), cells, raw)


@PROPERTY
@given(chunk=st.lists(lines(), min_size=1, max_size=8), raw_bytes=st.booleans())
def test_orjson_reader_equals_the_json_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: list[bytes], raw_bytes: bool
) -> None:
    if frame_module._fast_loads is None:
        pytest.fail("orjson is a dependency: it must be installed")
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(chunk) + b"\n")
    fast = _read(path, raw_bytes)
    with monkeypatch.context() as patch:
        patch.setattr(frame_module, "_fast_loads", None)
        plain = _read(path, raw_bytes)
    if fast != plain:
        # The one allowed difference: the plain reader decodes the whole chunk before parsing,
        # so a line that is not UTF-8 is reported even when a line before it is not JSON; the
        # fast reader parses line by line and names that earlier line.
        assert fast[0] == plain[0] == "error"
        assert (fast[1][0], plain[1][0]) == ("TableFormatError", "UnicodeDecodeError")
