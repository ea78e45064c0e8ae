"""What a person can do to an episode's page function in the tagger, as pure functions.

Each edit takes a ``PageFunction`` and returns a new one, or raises ``EditRefused`` with one line that
says why in the person's terms (the page, the frame, the neighbouring tag it would cross). Pages are
named by their number in the volume (``first_page + i``), as the page shows them. The rules are the
page function's own (``data.page_function.validate``): tags keep the pages in order, stay inside the
episode, and the last page reaches the last supported frame; on top of those, a tag never lands on
an excluded frame (intro, outro, recap), which has no page.

Provenance: a boundary a person set, moved or accepted after looking at it is ``hand``; accepting
every proposal at once without review keeps them ``proposed`` until each is confirmed.
"""

import dataclasses
from typing import Optional, Sequence

from manganime_ext.data import page_function
from manganime_ext.data.page_function import PageFunction, PageFunctionError


class EditRefused(ValueError):
    """An edit that would break a rule of the page function; one line for the person."""


def _index(pf: PageFunction, page: int) -> int:
    first, stop = pf.page_range
    if not first <= page < stop:
        raise EditRefused(f"page {page} is not one of this episode's pages {first}..{stop - 1}")
    return page - first


def _checked(pf: PageFunction, boundaries, provenance) -> PageFunction:
    try:
        return page_function.validate(dataclasses.replace(pf, boundaries=list(boundaries),
                                                          provenance=list(provenance)))
    except PageFunctionError as e:
        raise EditRefused(str(e)) from None


def order_conflict(pf: PageFunction, i: int, frame: int) -> Optional[str]:
    """Why page index ``i`` cannot end at ``frame`` given the other tags (None if it can)."""
    b, n = pf.boundaries, pf.num_frames
    before = [k for k in range(i) if b[k] < n and b[k] > frame]
    after = [k for k in range(i + 1, len(b)) if b[k] < n and b[k] < frame]
    page = pf.first_page + i
    if before:
        k = before[-1]
        return (f"page {page} cannot end at frame {frame}: page {pf.first_page + k}, before it, already ends "
                f"at frame {b[k]} (tags keep the pages in order)")
    if after:
        k = after[0]
        return (f"page {page} cannot end at frame {frame}: page {pf.first_page + k}, after it, already ends "
                f"at frame {b[k]} (tags keep the pages in order)")
    return None


def tag(pf: PageFunction, page: int, frame: int, provenance: str = "hand") -> PageFunction:
    """``frame`` is the last frame of ``page``: set (or move) that page's boundary."""
    i = _index(pf, page)
    if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < pf.num_frames:
        raise EditRefused(f"frame {frame} is outside the episode's frames 0..{pf.num_frames - 1}")
    for start, stop in pf.exclusions:
        if start <= frame < stop:
            raise EditRefused(f"frame {frame} is excluded ([{start}, {stop}): intro, outro or recap), it has "
                              f"no page to end")
    why = order_conflict(pf, i, frame)
    if why:
        raise EditRefused(why)
    bounds, prov = list(pf.boundaries), list(pf.provenance)
    bounds[i], prov[i] = frame, provenance
    return _checked(pf, bounds, prov)


def untag(pf: PageFunction, page: int) -> PageFunction:
    """Forget ``page``'s boundary: its frames fall back to the linear guess."""
    i = _index(pf, page)
    if pf.boundaries[i] >= pf.num_frames:
        raise EditRefused(f"page {page} is not tagged")
    bounds, prov = list(pf.boundaries), list(pf.provenance)
    bounds[i], prov[i] = pf.num_frames, None
    return _checked(pf, bounds, prov)


def nudge(pf: PageFunction, page: int, delta: int) -> PageFunction:
    """Move ``page``'s boundary by ``delta`` frames; the person moved it, so it becomes ``hand``."""
    i = _index(pf, page)
    if pf.boundaries[i] >= pf.num_frames:
        raise EditRefused(f"page {page} is not tagged: tag it before nudging its boundary")
    return tag(pf, page, pf.boundaries[i] + delta)


def accept(pf: PageFunction, proposal: Sequence[int], page: int) -> PageFunction:
    """Take the proposal's boundary for ``page`` (reviewed by the person: ``hand``)."""
    i = _index(pf, page)
    if i >= len(proposal) or proposal[i] >= pf.num_frames:
        raise EditRefused(f"page {page} has no proposed boundary")
    return tag(pf, page, int(proposal[i]))


def accept_all(pf: PageFunction, proposal: Sequence[int]) -> PageFunction:
    """Take every proposed boundary of an untagged page that fits between the tags already there.

    Tags already set are kept; a proposal that would cross one is left out (it stays a ghost). Taken
    without review, they stay ``proposed`` until confirmed one by one.
    """
    if len(proposal) != len(pf.boundaries):
        raise EditRefused(f"the proposal covers {len(proposal)} pages, the episode {len(pf.boundaries)}")
    out, taken = pf, 0
    for i, b in enumerate(proposal):
        if out.boundaries[i] < out.num_frames or not 0 <= b < out.num_frames:
            continue
        try:
            out = tag(out, out.first_page + i, int(b), provenance="proposed")
            taken += 1
        except EditRefused:
            continue
    if not taken:
        raise EditRefused("no proposed boundary fits: every page is tagged or its proposal crosses a tag")
    return out
