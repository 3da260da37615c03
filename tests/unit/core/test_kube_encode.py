"""Request bodies are written as Go's encoding/json writes them, so the API server's byte-for-byte
comparisons (a ControllerRevision's data) hold after it re-encodes an object for a patch."""

from __future__ import annotations

import json

from operators.core.kube import decode, encode


def test_compact_utf8_and_html_escaped_like_go() -> None:
    body = {"cmd": ["sh", "-c", "a && b > /tmp/x < y"], "name": "café", "sep": "\u2028\u2029", "n": [1, 2.5, None]}
    raw = encode(body)
    assert raw == ('{"cmd":["sh","-c","a \\u0026\\u0026 b \\u003e /tmp/x \\u003c y"],"name":"café",'
                   '"sep":"\\u2028\\u2029","n":[1,2.5,null]}').encode()
    assert json.loads(raw) == body


def test_core_objects_and_free_form_ones_decode_alike_but_big_integers_stay_exact_outside_the_core_group() -> None:
    pod = b'{"kind":"Pod","metadata":{"name":"p","generation":9223372036854775807},"spec":{"x":[1.5,"<&>"]}}'
    assert decode(pod, "/api/v1/namespaces/ns/pods") == decode(pod, "/apis/example.com/v1/things")
    big = b'{"spec":{"count":123456789012345678901234567890}}'
    assert decode(big, "/apis/example.com/v1/namespaces/ns/things")["spec"]["count"] == 123456789012345678901234567890
