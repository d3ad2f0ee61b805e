"""/pipeline, /lead and /deal: private answers, from revbot's store at once and from the CRM
through `response_url` (the CRM never runs inside Slack's 3-second ack)."""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.core import access, lookup
from bot.core.crm import CrmError, Deal
from bot.core.crm_cache import CachedDealSearch
from bot.core.db import reading
from bot.core.metrics import week_bounds
from bot.core.writeback import lead_ref
from bot.services import Services
from bot.views.lookup import (
    DEAL_USAGE,
    LEAD_USAGE,
    MAX_DEALS,
    PIPELINE_USAGE,
    build_deal_failed,
    build_deal_looking,
    build_deal_results,
    build_deal_waiting,
    build_lead_results,
    build_pipeline,
    build_team,
    ephemeral,
)

log = logging.getLogger(__name__)

# How long a /deal answer waits for the CRM before an interim "still waiting" follow-up, and
# before giving up (Slack allows 5 follow-ups within 30 minutes per response_url; we use 2).
CRM_PATIENCE_SECONDS = 4.0
CRM_GIVE_UP_SECONDS = 25.0
LOOKUP_THREADS = 8
MAX_PENDING_LOOKUPS = 64
BUSY = "revbot is answering many lookups right now; try again in a few seconds."

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>$|^@?([UW][A-Z0-9]{2,})$")


def mentioned_user(text: str) -> str | None:
    """The Slack user id in `<@U123|name>` (escaped commands), `<@U123>` or a bare `U123`."""
    match = _MENTION.match(text.strip())
    return (match.group(1) or match.group(2)) if match else None


class DealLookups:
    """Runs /deal's CRM searches off the request thread (bounded) and answers via response_url."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self.search = CachedDealSearch(services.crm, timer=time.monotonic)
        self._crm_pool = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="revbot-crm-lookup")
        self._answer_pool = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="revbot-lookup")
        self._slots = threading.BoundedSemaphore(MAX_PENDING_LOOKUPS)

    def reserve(self) -> bool:
        """Take a place for one search; False when too many are in flight already."""
        return self._slots.acquire(blocking=False)

    def start(self, text: str, who: access.Viewer, respond: Respond) -> None:
        """Run a reserved search; its answer goes to `respond`."""
        future = self._answer_pool.submit(self._answer, text, who, respond)
        future.add_done_callback(self._finished)

    def _finished(self, future: Future[None]) -> None:
        self._slots.release()
        error = future.exception()
        if error is not None:
            log.error("a /deal answer failed: %s", type(error).__name__, exc_info=error)

    def _answer(self, text: str, who: access.Viewer, respond: Respond) -> None:
        crm = self._crm_pool.submit(self.search.search_deals, text, limit=MAX_DEALS + 1)
        deals: list[Deal] | None
        try:
            deals = crm.result(timeout=CRM_PATIENCE_SECONDS)
        except FutureTimeout:
            respond(**build_deal_waiting(text, CRM_PATIENCE_SECONDS), replace_original=True)
            deals = self._wait_longer(crm, text, respond)
            if deals is None:
                return
        except CrmError as error:
            log.warning("CRM deal search failed: %s", type(error).__name__)
            respond(**build_deal_failed(text, _crm_problem(error)), replace_original=True)
            return
        respond(**self._results(text, deals, who), replace_original=True)

    def _wait_longer(
        self, crm: Future[list[Deal]], text: str, respond: Respond
    ) -> list[Deal] | None:
        try:
            return crm.result(timeout=CRM_GIVE_UP_SECONDS - CRM_PATIENCE_SECONDS)
        except FutureTimeout:
            reason = f"the CRM did not answer within {CRM_GIVE_UP_SECONDS:.0f} s."
        except CrmError as error:
            log.warning("CRM deal search failed: %s", type(error).__name__)
            reason = _crm_problem(error)
        respond(**build_deal_failed(text, reason), replace_original=True)
        return None

    def _results(self, text: str, deals: list[Deal], who: access.Viewer) -> dict[str, Any]:
        services = self._services
        with reading(services.engine) as session:
            attached = lookup.requests_for_deals(session, [d.id for d in deals])
        return build_deal_results(text, deals, attached, playbook=services.playbook, who=who)


def _crm_problem(error: CrmError) -> str:
    if error.retryable:
        return "the CRM is unavailable or busy right now."
    return "revbot's CRM connection needs attention (ask RevOps to run `revbot check`)."


def register(app: App, services: Services) -> None:
    """Attach /pipeline, /lead and /deal."""
    playbook = services.playbook
    deals = DealLookups(services)

    def pipeline_answer(user_id: str, words: list[str]) -> dict[str, Any]:
        who = access.viewer(playbook, user_id)
        now = services.clock()
        arg = " ".join(words)
        with reading(services.engine) as session:
            if not words:
                mine = lookup.rep_pipeline(session, user_id, claimable_pools=who.member_of)
                return build_pipeline(mine, playbook=playbook, who=who, now=now)
            if len(words) == 1 and words[0].lower() == "team":
                access.check_may_see_team(playbook, who)
                pools = [p for p in playbook.routing.pools if p in who.team_pools]
                week = week_bounds(playbook, now)
                summaries = lookup.team_summary(session, pools, now=now, week=week)
                return build_team(summaries, playbook=playbook)
            rep_id = mentioned_user(arg)
            if rep_id is None:
                return ephemeral(f"revbot doesn't know that. {PIPELINE_USAGE}")
            access.check_may_see_rep(playbook, who, rep_id)
            within = None if who.sees_all or rep_id == user_id else who.manages
            theirs = lookup.rep_pipeline(session, rep_id, within_pools=within)
            return build_pipeline(theirs, playbook=playbook, who=who, now=now)

    @app.command("/pipeline")
    def on_pipeline(ack: Ack, command: dict[str, Any]) -> None:
        raw = command.get("text", "")
        if len(raw) > lookup.MAX_QUERY:
            ack(**ephemeral(f"That is too long for `/pipeline`. {PIPELINE_USAGE}"))
            return
        try:
            ack(**pipeline_answer(command["user_id"], raw.split()))
        except access.LookupDenied as denied:
            ack(**ephemeral(denied.message))

    @app.command("/lead")
    def on_lead(ack: Ack, command: dict[str, Any]) -> None:
        try:
            text = lookup.clean_query(command.get("text", ""), usage=LEAD_USAGE)
        except lookup.BadQuery as bad:
            ack(**ephemeral(bad.message))
            return
        who = access.viewer(playbook, command["user_id"])
        with reading(services.engine) as session:
            found = lookup.find_leads(session, text, who)
            urls = {
                m.lead.id or 0: services.crm.record_url(lead_ref(m.lead)) for m in found.matches
            }
            answer = build_lead_results(
                found, playbook=playbook, who=who, crm_urls=urls, now=services.clock()
            )
        ack(**answer)

    @app.command("/deal")
    def on_deal(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        try:
            text = lookup.clean_query(command.get("text", ""), usage=DEAL_USAGE)
            who = access.viewer(playbook, command["user_id"])
            access.check_may_see_deals(playbook, who)
        except (lookup.BadQuery, access.LookupDenied) as refused:
            ack(**ephemeral(refused.message))
            return
        if not deals.reserve():
            ack(**ephemeral(BUSY))
            return
        ack(**build_deal_looking(text))
        deals.start(text, who, respond)
