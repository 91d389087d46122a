"""RecentPages (apps/portal/pages.py): a page is rendered once per key, kept only if it says so, and few are kept."""

from __future__ import annotations

from apps.portal.pages import RecentPages


def renderer(page: str, keep: bool = True):
    calls = []

    def render():
        calls.append(page)
        return page, keep

    return render, calls


def test_a_key_seen_again_gets_its_page_without_rendering():
    pages = RecentPages()
    render, calls = renderer("<p>one</p>")
    assert pages.get(("?", b"answer"), render) == "<p>one</p>"
    assert pages.get(("?", b"answer"), render) == "<p>one</p>"
    assert calls == ["<p>one</p>"]
    other, other_calls = renderer("<p>two</p>")
    assert pages.get(("?", b"another answer"), other) == "<p>two</p>"  # any other byte: its own page
    assert other_calls == ["<p>two</p>"]


def test_a_page_that_says_not_to_be_kept_is_rendered_every_time():
    pages = RecentPages()
    render, calls = renderer("<p>degraded</p>", keep=False)
    assert pages.get("key", render) == pages.get("key", render) == "<p>degraded</p>"
    assert len(calls) == 2


def test_only_the_last_pages_are_kept():
    pages = RecentPages(size=2)
    for key in ("a", "b", "c"):
        pages.get(key, renderer(key)[0])
    render, calls = renderer("a again")
    assert pages.get("a", render) == "a again"  # the oldest went first
    assert pages.get("c", render) == "c" and calls == ["a again"]
