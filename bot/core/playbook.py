"""The playbook: the team's shared process (tiers, reasons, routing, scoring) as validated YAML."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from bot.core.calendar import BusinessCalendar
from bot.core.durations import parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
SlackUserId = Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,}$")]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

RULE_FIELDS = (
    "country",
    "industry",
    "segment",
    "product",
    "lead_source",
    "source",
    "campaign",
    "title",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Channels(_Strict):
    """Where revbot posts; a channel ID (C0123ABC) or a #name."""

    pipeline: str = "#revenue-pipeline"
    deal_support: str = "#deal-support"
    digest: str = "#revenue-pipeline"
    alerts: str | None = None

    @property
    def alerts_channel(self) -> str:
        """Where operational alerts (dead letters) go: `alerts`, else the pipeline channel."""
        return self.alerts or self.pipeline


class Tier(_Strict):
    """An SLA tier: leads scoring at least `min_score` must be accepted within `accept_within`."""

    name: Code
    label: str | None = None
    min_score: int = Field(ge=0, le=100)
    accept_within: Duration
    clock: Literal["business", "wall"] = "business"
    nudge_before: Duration | None = None
    escalate_after: Duration = timedelta(0)
    reassign_after: Duration | None = None

    @property
    def nudge_lead_time(self) -> timedelta:
        """How long before the deadline the owner is nudged (default: a third of the SLA)."""
        return self.nudge_before if self.nudge_before is not None else self.accept_within / 3

    @property
    def reassign_delay(self) -> timedelta:
        """How long after the breach the lead moves to the next rep (default: one more SLA)."""
        return self.reassign_after if self.reassign_after is not None else self.accept_within

    @property
    def display(self) -> str:
        """The tier's name as people read it."""
        return self.label or self.name.replace("_", " ").title()


class Reason(_Strict):
    """A disposition reason: the code revbot stores, the label people see, the value the CRM gets."""

    code: Code
    label: str = Field(min_length=1, max_length=75)
    crm_value: str | None = None

    @property
    def crm(self) -> str:
        """The value written to the CRM's reason field."""
        return self.crm_value or self.label


class Reasons(_Strict):
    """Reason codes offered when rejecting or recycling a lead."""

    reject: list[Reason] = Field(min_length=1)
    recycle: list[Reason] = Field(min_length=1)


class Member(_Strict):
    """A rep in a pool; `weight` shares round-robin turns, `capacity` caps open leads held."""

    slack_id: SlackUserId
    name: str | None = None
    email: str | None = None
    weight: int = Field(1, ge=1, le=100)
    capacity: int | None = Field(None, ge=1)


class Pool(_Strict):
    """A group of reps that works a slice of leads."""

    members: list[Member] = Field(default_factory=list)
    open: bool = False
    manager: SlackUserId | None = None
    backup: str | None = None

    def member(self, slack_id: str) -> Member | None:
        """The member with this Slack id, if any."""
        return next((m for m in self.members if m.slack_id == slack_id), None)


class NumberRange(_Strict):
    """An inclusive numeric range; either bound may be left out."""

    min: int | None = None
    max: int | None = None

    def contains(self, value: int | None) -> bool:
        """True when `value` is present and inside the range."""
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class RuleMatch(_Strict):
    """Conditions on lead fields; every condition given must hold (values match case-insensitively)."""

    country: list[str] | None = None
    industry: list[str] | None = None
    segment: list[str] | None = None
    product: list[str] | None = None
    lead_source: list[str] | None = None
    source: list[str] | None = None
    campaign: list[str] | None = None
    title: list[str] | None = None
    employees: NumberRange | None = None
    score: NumberRange | None = None

    @field_validator(*RULE_FIELDS, mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Rule(_Strict):
    """Send leads matching `when` to `pool`; rules are tried in order, the first match wins."""

    when: RuleMatch
    pool: str


class Routing(_Strict):
    """How leads reach reps: `claim` (anyone in the pool accepts) or `assign` (round-robin owner)."""

    mode: Literal["claim", "assign"] = "claim"
    default_pool: str = "sales"
    rules: list[Rule] = Field(default_factory=list)
    pools: dict[str, Pool] = Field(min_length=1)


class EmployeeBand(_Strict):
    """Fit points for a company-size band."""

    min: int | None = None
    max: int | None = None
    points: int


class FitScoring(_Strict):
    """Points for who the lead is; keys match case-insensitively (titles by substring)."""

    titles: dict[str, int] = Field(default_factory=dict)
    industries: dict[str, int] = Field(default_factory=dict)
    countries: dict[str, int] = Field(default_factory=dict)
    employees: list[EmployeeBand] = Field(default_factory=list)


class IntentScoring(_Strict):
    """Points for what the lead did."""

    signals: dict[str, int] = Field(default_factory=dict)
    content: int = 0
    lead_sources: dict[str, int] = Field(default_factory=dict)


class Scoring(_Strict):
    """Used only when the lead arrives without a score; the total is capped at 100."""

    fit: FitScoring = FitScoring()
    intent: IntentScoring = IntentScoring()


CrmName = Literal["local", "salesforce", "hubspot"]
ApiName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")]
FieldRole = Literal["reason", "note", "revisit_on"]


class StatusValues(_Strict):
    """The CRM status value written for each handoff state (unset: the CRM's default)."""

    open: str | None = None
    accepted: str | None = None
    rejected: str | None = None
    recycled: str | None = None


class MqlCriterion(_Strict):
    """Which CRM records are MQLs: `field` equals `equals` (or is set at all when `equals` is
    omitted); `date_field` holds when the record became one (its MQL time, and HubSpot's watermark)."""

    field: ApiName
    equals: str | bool | None = None
    date_field: ApiName | None = None


class CrmFieldMap(_Strict):
    """How one CRM holds the handoff: status values, the fields written, what an MQL is, owners.

    Every key is optional; what a playbook leaves out comes from that CRM's defaults.
    `fields` maps reason / note / revisit_on to field API names ("" writes nothing);
    `owners` maps Slack user ids to CRM user/owner ids, ahead of the lookup by email.
    """

    status_values: StatusValues = StatusValues()
    fields: dict[FieldRole, ApiName | Literal[""]] = Field(default_factory=dict)
    mql: MqlCriterion | None = None
    owners: dict[SlackUserId, str] = Field(default_factory=dict)
    poll: bool = True
    poll_every: Duration = timedelta(seconds=30)

    def over(self, defaults: CrmFieldMap) -> CrmFieldMap:
        """This map with whatever it leaves unset taken from `defaults`."""
        given = self.status_values.model_dump(exclude_none=True)
        statuses = StatusValues(**{**defaults.status_values.model_dump(), **given})
        return self.model_copy(
            update={
                "status_values": statuses,
                "fields": {**defaults.fields, **self.fields},
                "mql": self.mql or defaults.mql,
            }
        )

    def status_value(self, status: str) -> str:
        """The value written for a handoff state (the state's own name when none is set)."""
        value: str | None = getattr(self.status_values, status, None)
        return value or status

    def field(self, role: FieldRole) -> str | None:
        """The API name written for `role`, or None when the playbook turned it off."""
        return self.fields.get(role) or None


DEFAULT_FIELD_MAPS: dict[str, CrmFieldMap] = {
    "local": CrmFieldMap(
        status_values=StatusValues(
            open="Open", accepted="Working", rejected="Disqualified", recycled="Recycled"
        ),
    ),
    # Salesforce's standard Lead Status picklist, plus custom fields documented in the README.
    "salesforce": CrmFieldMap(
        status_values=StatusValues(
            open="Open - Not Contacted",
            accepted="Working - Contacted",
            rejected="Closed - Not Converted",
            recycled="Closed - Not Converted",
        ),
        fields={
            "reason": "Revbot_Reason__c",
            "note": "Revbot_Note__c",
            "revisit_on": "Revbot_Revisit_On__c",
        },
        mql=MqlCriterion(field="Status", equals="MQL"),
    ),
    # HubSpot's built-in hs_lead_status options and lifecycle stage, plus custom properties.
    "hubspot": CrmFieldMap(
        status_values=StatusValues(
            open="NEW", accepted="IN_PROGRESS", rejected="UNQUALIFIED", recycled="BAD_TIMING"
        ),
        fields={
            "reason": "revbot_reason",
            "note": "revbot_note",
            "revisit_on": "revbot_revisit_on",
        },
        mql=MqlCriterion(
            field="lifecyclestage",
            equals="marketingqualifiedlead",
            date_field="hs_lifecyclestage_marketingqualifiedlead_date",
        ),
    ),
}


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class BusinessHours(_Strict):
    """When the team works, in its timezone."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    start: time = time(9, 0)
    end: time = time(17, 0)


class DigestTargets(_Strict):
    """What the scoreboard compares the week against (rates as fractions: 0.9 = 90%)."""

    weekly_mqls: int | None = Field(None, ge=0)
    acceptance_min: float = Field(0.9, ge=0, le=1)
    rejection_max: float = Field(0.3, ge=0, le=1)
    sla_compliance_min: float = Field(0.9, ge=0, le=1)


class Digest(_Strict):
    """The weekly scoreboard: when (cron in the team's timezone), where, and against which targets."""

    schedule: str = "0 9 * * mon"
    channel: str | None = None
    dm_managers: bool = False
    weeks: int = Field(8, ge=2, le=52)
    targets: DigestTargets = DigestTargets()


class TouchMinimum(_Strict):
    """Touches a rep must log before recycling for one of `reasons`."""

    touches: int = Field(ge=1, le=100)
    within: Duration
    reasons: list[Code] = Field(min_length=1)


class Touches(_Strict):
    """Touch logging on accepted leads."""

    types: list[Code] = Field(default_factory=lambda: ["call", "email", "linkedin"], min_length=1)
    minimum: TouchMinimum | None = None


class Access(_Strict):
    """What /pipeline, /lead, /deal and the App Home may show to whom.

    Roles come from the playbook: a rep is a member of a pool (everyone is a member of an
    `open` pool), a manager is a pool's `manager`, a marketer is in `deal_support.marketers`.
    Everyone may see the leads they own; `deals: sales` means reps and managers.
    """

    reps: Literal["own", "pool", "all"] = "pool"
    managers: Literal["pools", "all"] = "pools"
    marketers: Literal["all", "none"] = "all"
    deals: Literal["everyone", "sales", "nobody"] = "everyone"
    contact_details: list[Literal["rep", "manager", "marketer"]] = Field(
        default_factory=list, max_length=3
    )


class AskType(_Strict):
    """A kind of help reps may ask marketing for, with its first-response SLA (business time)."""

    code: Code
    label: str = Field(min_length=1, max_length=75)
    first_response_within: Duration = timedelta(hours=4)
    clock: Literal["business", "wall"] = "business"


DEFAULT_ASK_TYPES = [
    AskType(code="case_study", label="Case study / customer story"),
    AskType(code="battle_card", label="Battle card / competitor comparison"),
    AskType(code="roi", label="ROI / business case"),
    AskType(
        code="security_docs",
        label="Security or procurement docs",
        first_response_within=timedelta(hours=2),
    ),
    AskType(code="air_cover", label="Air cover: ads, email sequence or event invite"),
    AskType(code="custom", label="Custom content", first_response_within=timedelta(hours=8)),
]


class DealSupport(_Strict):
    """#deal-support: who answers (marketers or a Slack user group), ask types and their SLAs.

    With neither `marketers` nor `marketer_group`, anyone but the requester may take a request.
    """

    marketers: list[SlackUserId] = Field(default_factory=list)
    marketer_group: str | None = Field(None, pattern=r"^S[A-Z0-9]{2,}$")
    manager: SlackUserId | None = None
    escalate_after: Duration = timedelta(hours=2)
    ask_types: list[AskType] = Field(default_factory=lambda: list(DEFAULT_ASK_TYPES), min_length=1)

    @property
    def open_to_all(self) -> bool:
        """True when the playbook names no marketers and no group: anyone may take requests."""
        return not self.marketers and self.marketer_group is None

    def ask_type(self, code: str) -> AskType | None:
        """The ask type with this code, if the playbook has it."""
        return next((a for a in self.ask_types if a.code == code), None)

    def deadline(
        self, calendar: BusinessCalendar, code: str, start: datetime, span: timedelta
    ) -> datetime:
        """`span` after `start` on the clock of ask type `code` (business time unless it says wall)."""
        ask = self.ask_type(code)
        if ask is not None and ask.clock == "wall":
            return start + span
        return start if span <= timedelta(0) else calendar.add(start, span)


class Playbook(_Strict):
    """The whole playbook; see revbot.example.yml for every key with its meaning."""

    crm: CrmName = "local"
    channels: Channels = Channels()
    timezone: str = "UTC"
    business_hours: BusinessHours = BusinessHours()
    holidays: list[date] = Field(default_factory=list)
    limbo_after: Duration = timedelta(hours=48)
    digest: Digest = Digest()
    touches: Touches = Touches()
    tiers: list[Tier] = Field(min_length=1)
    reasons: Reasons
    routing: Routing
    scoring: Scoring = Scoring()
    crm_fields: dict[CrmName, CrmFieldMap] = Field(default_factory=dict)
    access: Access = Access()
    deal_support: DealSupport = DealSupport()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin"
            ) from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The team's timezone."""
        return ZoneInfo(self.timezone)

    @property
    def calendar(self) -> BusinessCalendar:
        """The team's business calendar."""
        hours = self.business_hours
        return BusinessCalendar(
            self.zone,
            frozenset(WEEKDAYS.index(d) for d in hours.days),
            hours.start,
            hours.end,
            frozenset(self.holidays),
        )

    def deadline(self, tier: Tier, start: datetime, within: timedelta | None = None) -> datetime:
        """When `within` (default: the tier's accept-within) runs out, on the tier's clock."""
        span = tier.accept_within if within is None else within
        return self.calendar.add(start, span) if tier.clock == "business" else start + span

    def time_between(self, tier: Tier, start: datetime, end: datetime) -> timedelta:
        """Time between two moments on the tier's clock (business or wall)."""
        if tier.clock == "business":
            return self.calendar.elapsed(start, end)
        return max(end - start, timedelta(0))

    @property
    def tiers_by_rank(self) -> list[Tier]:
        """Tiers from the hottest (highest min_score) down."""
        return sorted(self.tiers, key=lambda t: t.min_score, reverse=True)

    def tier_for(self, score: int) -> Tier:
        """The highest tier whose minimum the score reaches."""
        ranked = self.tiers_by_rank
        return next((t for t in ranked if score >= t.min_score), ranked[-1])

    def tier(self, name: str) -> Tier:
        """The tier called `name` (falls back to the lowest tier if it was renamed)."""
        return next(
            (t for t in self.tiers if t.name == name), min(self.tiers, key=lambda t: t.min_score)
        )

    def reason(self, kind: str, code: str) -> Reason | None:
        """The reject or recycle reason with this code, if the playbook has it."""
        reasons = self.reasons.reject if kind == "reject" else self.reasons.recycle
        return next((r for r in reasons if r.code == code), None)

    def field_map(self, crm: str) -> CrmFieldMap:
        """How `crm` holds the handoff: the playbook's `crm_fields` over that CRM's defaults."""
        defaults = DEFAULT_FIELD_MAPS.get(crm, DEFAULT_FIELD_MAPS["local"])
        given = self.crm_fields.get(crm)  # type: ignore[call-overload]
        return given.over(defaults) if given is not None else defaults


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the playbook, named by its key path and line."""

    key: str
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        """`source:line key: message`, the way `revbot check` prints it."""
        where = f"{source}:{self.line}" if self.line else source
        return f"{where} {self.key}: {self.message}"


class PlaybookError(Exception):
    """The playbook could not be loaded; `problems` names each bad key."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.render(source) for p in problems))


DEFAULT_PLAYBOOK = "default_playbook.yml"


def default_playbook_text() -> str:
    """The built-in playbook revbot runs with when no revbot.yml is given."""
    return resources.files("bot.core").joinpath(DEFAULT_PLAYBOOK).read_text(encoding="utf-8")


def resolve_playbook_path(configured: Path | None, cwd: Path) -> Path | None:
    """`REVBOT_PLAYBOOK` when set, else ./revbot.yml when present, else None (built-in defaults)."""
    if configured is not None:
        return configured
    candidate = cwd / "revbot.yml"
    return candidate if candidate.exists() else None


def load_playbook(path: Path | None) -> Playbook:
    """Load and validate a playbook file, or the built-in defaults when `path` is None."""
    if path is None:
        return parse_playbook(default_playbook_text(), "built-in playbook")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(
            str(path), [Problem("(file)", f"cannot read it: {exc.strerror}")]
        ) from exc
    return parse_playbook(text, str(path))


def parse_playbook(text: str, source: str = "playbook") -> Playbook:
    """Validate playbook YAML; raise PlaybookError naming every bad key with its line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PlaybookError(
            source, [Problem("(yaml)", str(getattr(exc, "problem", exc)), line)]
        ) from exc
    if not isinstance(data, dict):
        raise PlaybookError(
            source, [Problem("(top level)", "expected a mapping of playbook keys", 1)]
        )
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        problems = [_problem_from_error(err, root) for err in exc.errors()]
        raise PlaybookError(source, problems) from exc
    cross = [
        Problem(key, msg, _line_of(root, _split_key(key))) for key, msg in _cross_check(playbook)
    ]
    if cross:
        raise PlaybookError(source, cross)
    return playbook


def _problem_from_error(err: Any, root: yaml.Node | None) -> Problem:
    loc = tuple(part for part in err["loc"] if not _is_validator_tag(part))
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against revbot.example.yml)"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return Problem(_join_key(loc), message, _line_of(root, loc))


def _is_validator_tag(part: Any) -> bool:
    # pydantic inserts tags such as "function-before[...]" into error locations.
    return isinstance(part, str) and "[" in part and part.endswith("]")


def _join_key(loc: Iterable[Any]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _split_key(key: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == str(part)), None)
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _cross_check(pb: Playbook) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    pools = pb.routing.pools
    if pb.routing.default_pool not in pools:
        problems.append(
            ("routing.default_pool", f"no pool named {pb.routing.default_pool!r} in routing.pools")
        )
    for i, rule in enumerate(pb.routing.rules):
        if rule.pool not in pools:
            problems.append(
                (f"routing.rules[{i}].pool", f"no pool named {rule.pool!r} in routing.pools")
            )
    for name, pool in pools.items():
        if pool.backup is not None and pool.backup not in pools:
            problems.append((f"routing.pools.{name}.backup", f"no pool named {pool.backup!r}"))
        if pool.backup == name:
            problems.append((f"routing.pools.{name}.backup", "a pool cannot back itself up"))
        if not pool.members and not pool.open:
            problems.append(
                (f"routing.pools.{name}.members", "a pool needs members, or `open: true`")
            )
        seen: set[str] = set()
        for j, member in enumerate(pool.members):
            if member.slack_id in seen:
                problems.append((f"routing.pools.{name}.members[{j}].slack_id", "listed twice"))
            seen.add(member.slack_id)
    tier_names = [t.name for t in pb.tiers]
    tier_scores = [t.min_score for t in pb.tiers]
    for i, tier in enumerate(pb.tiers):
        if tier_names.count(tier.name) > 1:
            problems.append((f"tiers[{i}].name", f"tier {tier.name!r} is defined twice"))
        if tier_scores.count(tier.min_score) > 1:
            problems.append(
                (f"tiers[{i}].min_score", f"another tier also starts at {tier.min_score}")
            )
        if tier.accept_within <= timedelta(0):
            problems.append((f"tiers[{i}].accept_within", "must be longer than zero"))
    if min(t.min_score for t in pb.tiers) != 0:
        problems.append(
            ("tiers", "the lowest tier needs min_score: 0 so every lead lands in a tier")
        )
    hours = pb.business_hours
    if hours.end <= hours.start:
        problems.append(("business_hours.end", "must be later than business_hours.start"))
    if pb.digest.schedule:
        try:
            CronTrigger.from_crontab(pb.digest.schedule, timezone=pb.zone)
        except ValueError as exc:
            problems.append(
                ("digest.schedule", f"not a cron expression (minute hour day month weekday): {exc}")
            )
    minimum = pb.touches.minimum
    if minimum is not None:
        recycle_codes = {r.code for r in pb.reasons.recycle}
        for i, code in enumerate(minimum.reasons):
            if code not in recycle_codes:
                problems.append(
                    (f"touches.minimum.reasons[{i}]", f"unknown recycle reason code {code!r}")
                )
    ask_codes = [a.code for a in pb.deal_support.ask_types]
    for i, ask in enumerate(pb.deal_support.ask_types):
        if ask_codes.count(ask.code) > 1:
            problems.append(
                (f"deal_support.ask_types[{i}].code", f"ask type {ask.code!r} is defined twice")
            )
        if ask.first_response_within <= timedelta(0):
            problems.append(
                (f"deal_support.ask_types[{i}].first_response_within", "must be longer than zero")
            )
    for kind in ("reject", "recycle"):
        codes = [r.code for r in getattr(pb.reasons, kind)]
        for i, code in enumerate(codes):
            if codes.count(code) > 1:
                problems.append(
                    (f"reasons.{kind}[{i}].code", f"reason code {code!r} is defined twice")
                )
    return problems
