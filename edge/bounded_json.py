"""Decoding untrusted JSON at a bounded cost: size, nesting and the number of containers are checked on
the bytes, before the decoder (which recurses once per level and builds every object) sees them.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string, or an unterminated one up to the end (so no position is scanned twice), and an
# innermost array or object (one without a bracket inside). Both run at C speed.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_INNERMOST = re.compile(rb"\[[^\[\]{}]*+\]|\{[^\[\]{}]*+\}")


class JsonRefused(ValueError):
    """The payload is not JSON, or not JSON this process will decode; the message says why."""

def check_nesting(data: bytes, max_nesting: int, max_containers: int) -> None:
    """Refuse JSON nested deeper than ``max_nesting`` or with more than ``max_containers`` arrays and
    objects. Strings are blanked, containers counted, then innermost ones removed one level per pass:
    more than ``max_nesting`` passes is too deep. Each step is one regex over the bytes, so any payload
    costs a bounded number of linear scans (unbalanced brackets are left for the decoder to report)."""
    if data.count(b"[") + data.count(b"{") <= max_nesting:
        return
    rest = _STRING.sub(b'""', data)
    containers = rest.count(b"[") + rest.count(b"{")
    if containers > max_containers:  # decoding would build them all before anything is checked
        raise JsonRefused(f"payload has {containers} arrays and objects; at most {max_containers}")
    for _ in range(max_nesting):
        rest, removed = _INNERMOST.subn(b"0", rest)
        if not removed:
            return
    if _INNERMOST.search(rest):
        raise JsonRefused(f"payload is nested deeper than {max_nesting} levels")


def loads_bounded(payload: bytes | str, max_bytes: int, max_nesting: int, max_containers: int) -> Any:
    data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
    if len(data) > max_bytes:
        raise JsonRefused(f"payload is {len(data)} bytes; at most {max_bytes}")
    check_nesting(data, max_nesting, max_containers)
    try:
        return json.loads(data)
    except RecursionError:  # a last line of defence: the decoder ran out of stack
        raise JsonRefused("payload is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of 4300+ digits
        raise JsonRefused(f"payload is not JSON: {str(exc)[:200]}") from None
