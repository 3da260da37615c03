"""Request bodies are written as Go's encoding/json writes them, so the API server's byte-for-byte
comparisons (a ControllerRevision's data) hold after it re-encodes an object for a patch."""

from __future__ import annotations

import json

from operators.core.kube import encode


def test_compact_utf8_and_html_escaped_like_go() -> None:
    body = {"cmd": ["sh", "-c", "a && b > /tmp/x < y"], "name": "café", "sep": "\u2028\u2029", "n": [1, 2.5, None]}
    raw = encode(body)
    assert raw == ('{"cmd":["sh","-c","a \\u0026\\u0026 b \\u003e /tmp/x \\u003c y"],"name":"café",'
                   '"sep":"\\u2028\\u2029","n":[1,2.5,null]}').encode()
    assert json.loads(raw) == body
