"""If-None-Match against an entity tag: weak comparison, lists, `*`."""

from __future__ import annotations

import pytest

from kit.conditional import none_match, not_modified, weak_etag

pytestmark = pytest.mark.unit


def test_if_none_match_names_the_tag() -> None:
    tag = weak_etag(7)
    assert tag == 'W/"7"'
    assert none_match('W/"7"', tag)
    assert none_match('"7"', tag)  # weak comparison: strong or weak spelling of the same tag
    assert none_match('"6", W/"7"', tag)
    assert none_match(" * ", tag)
    assert not none_match('W/"6"', tag)
    assert not none_match('W/"70"', tag)
    assert not none_match("7", tag)  # not an entity tag (unquoted)
    assert not none_match("", tag)
    assert not none_match(None, tag)


def test_not_modified_has_no_body_and_keeps_the_headers() -> None:
    response = not_modified({"ETag": 'W/"7"', "Retry-After": "1"})
    assert response.status_code == 304
    assert response.body == b""
    assert response.headers["etag"] == 'W/"7"'
    assert response.headers["retry-after"] == "1"
