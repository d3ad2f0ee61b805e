"""Who may see what in lookups (/pipeline, /lead, /deal, App Home), from the playbook's `access`.

Roles come from the playbook: a *rep* is a member of a pool, a *manager* is a pool's `manager`,
a *marketer* is listed in `deal_support.marketers`. An `open` pool lets anyone in the channel
claim its leads, so everyone counts as a member of an open pool. A person may hold several
roles; each widens what they see. Everyone sees the leads they own or acted on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.playbook import Playbook

REP, MANAGER, MARKETER = "rep", "manager", "marketer"

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE_LIKE = re.compile(r"\+?\(?\d[\d\s().-]{6,}\d")
_PHONE_DIGITS = range(9, 16)  # E.164 allows at most 15; dates and short numbers have fewer than 9


class LookupDenied(Exception):
    """The viewer may not use this lookup at all; `message` says why (it names no record)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Viewer:
    """One Slack user as the playbook sees them, and the leads they may see."""

    user_id: str
    roles: frozenset[str]
    member_of: frozenset[str]
    manages: frozenset[str]
    sees_all: bool
    sees_pools: frozenset[str]
    contact_details: bool

    @property
    def is_sales(self) -> bool:
        """A rep or a manager."""
        return bool(self.member_of or self.manages)

    @property
    def team_pools(self) -> frozenset[str]:
        """The pools `/pipeline team` reports on: those they manage or belong to."""
        return self.manages | self.member_of


def viewer(playbook: Playbook, user_id: str) -> Viewer:
    """What `user_id` may see, by their roles in the playbook."""
    access = playbook.access
    pools = playbook.routing.pools
    member_of = frozenset(
        name for name, pool in pools.items() if pool.open or pool.member(user_id) is not None
    )
    manages = frozenset(name for name, pool in pools.items() if pool.manager == user_id)
    marketer = user_id in playbook.deal_support.marketers
    sees_all = (
        (bool(member_of) and access.reps == "all")
        or (bool(manages) and access.managers == "all")
        or (marketer and access.marketers == "all")
    )
    sees_pools = (member_of if access.reps in ("pool", "all") else frozenset()) | manages
    roles = frozenset(
        role for role, held in ((REP, member_of), (MANAGER, manages), (MARKETER, marketer)) if held
    )
    contact = bool(roles & set(access.contact_details))
    return Viewer(user_id, roles, member_of, manages, sees_all, sees_pools, contact)


def check_may_see_deals(playbook: Playbook, who: Viewer) -> None:
    """Raise LookupDenied unless the playbook lets `who` look up CRM deals."""
    rule = playbook.access.deals
    if rule == "nobody":
        raise LookupDenied("Deal lookups are turned off in this workspace's playbook.")
    if rule == "sales" and not who.is_sales:
        raise LookupDenied(
            "The playbook lets only reps and their managers look up deals; ask RevOps if you need to."
        )


def check_may_see_team(playbook: Playbook, who: Viewer) -> None:
    """Raise LookupDenied unless `who` may see a pool-wide view (`/pipeline team`)."""
    if not who.team_pools:
        raise LookupDenied(
            "You're not in any pool of the playbook, so there is no team to show. "
            "Ask RevOps to add you."
        )
    if not who.manages and playbook.access.reps == "own":
        raise LookupDenied(
            "The playbook lets reps see only their own leads; `/pipeline` shows yours."
        )


def check_may_see_rep(playbook: Playbook, who: Viewer, rep_id: str) -> None:
    """Raise LookupDenied unless `who` may see `rep_id`'s pipeline (managers only)."""
    if rep_id == who.user_id:
        return
    if not who.manages:
        raise LookupDenied("Only managers can look at another rep's pipeline.")
    if playbook.access.managers == "all":
        return
    rep_pools = {
        name for name, pool in playbook.routing.pools.items() if pool.member(rep_id) is not None
    }
    if not rep_pools & who.manages:
        managed = ", ".join(f"`{p}`" for p in sorted(who.manages))
        raise LookupDenied(f"You can look at the reps of the pools you manage ({managed}).")


def scrub_contacts(text: str, *, allowed: bool) -> str:
    """`text` with email addresses and phone numbers masked, unless contact details are allowed."""
    if allowed or not text:
        return text
    text = _EMAIL.sub("[email hidden]", text)
    return _PHONE_LIKE.sub(_mask_phone, text)


def _mask_phone(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    return "[phone hidden]" if digits in _PHONE_DIGITS else match.group(0)
