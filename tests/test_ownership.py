"""The ownership marker: what it says, how it is read back, and that it fits 100 characters."""

from __future__ import annotations

import pytest

from sidecar.providers.ownership import MAX_COMMENT, MAX_MARKER, Mark, Owner, read

COMMENT = "managed by dns-sidecar"


def test_marker_names_deployment_and_class() -> None:
    """The marker is the comment, then the deployment and the DNSClass."""
    assert Owner("home", "public").marker(COMMENT) == (
        "managed by dns-sidecar (owner=home, class=public)"
    )
    assert Owner("home").marker(COMMENT) == "managed by dns-sidecar (owner=home)"


def test_marker_reads_back() -> None:
    """What one owner writes is read as made by it, and by no other owner."""
    owner = Owner("home", "public")
    mark = read(owner.marker(COMMENT), COMMENT)
    assert mark == Mark("home", "public")
    assert mark.made_by(owner)
    assert not mark.made_by(Owner("home", "internal"))
    assert not mark.made_by(Owner("work", "public"))
    assert not mark.made_by(Owner("home"))
    assert mark.of_deployment("home")
    assert mark.of_class("public")


def test_legacy_marker_is_ours_of_no_class() -> None:
    """The bare comment (records made before owners) is ours, writable, of no known owner."""
    mark = read(COMMENT, COMMENT)
    assert mark == Mark()
    assert mark.legacy
    assert mark.writable_by(Owner("home", "public"))
    assert not mark.made_by(Owner("home", "public"))
    assert not mark.of_deployment("dns-sidecar")


@pytest.mark.parametrize(
    "text",
    [None, "", "hand made", "managed by dns-sidecarX", "managed by dns-sidecar (by hand)"],
)
def test_foreign_texts_are_not_ours(text: str | None) -> None:
    """No marker, another comment, or a suffix that is not an owner: not ours."""
    assert read(text, COMMENT) is None


def test_long_names_are_shortened_to_fit() -> None:
    """A class or deployment too long to fit is written as its digest, and still recognised."""
    owner = Owner("cluster-" + "x" * 80, "class-" + "y" * 80)
    text = owner.marker(COMMENT)
    assert len(text) <= MAX_MARKER
    mark = read(text, COMMENT)
    assert mark is not None
    assert mark.made_by(owner)
    assert not mark.made_by(Owner(owner.deployment, "class-" + "z" * 80))
    short_class = Owner("home", "c" * 80).marker(COMMENT)
    assert short_class.startswith("managed by dns-sidecar (owner=home, class=#")


def test_longest_comment_still_fits() -> None:
    """A comment of MAX_COMMENT characters leaves room for any owner; a longer one may not."""
    owner = Owner("d" * 90, "c" * 90)
    assert len(owner.marker("m" * MAX_COMMENT)) == MAX_MARKER
    with pytest.raises(ValueError, match="keep it to 61 characters"):
        owner.marker("m" * (MAX_COMMENT + 1))
