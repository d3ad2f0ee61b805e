"""revbot.example.yml is valid and documents every playbook key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel

from bot.core.playbook import Playbook, load_playbook

EXAMPLE = Path(__file__).resolve().parents[1] / "revbot.example.yml"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found:
            return found
    return None


def _merge(items: list[Any]) -> Any:
    """Deep-merge examples: dicts key by key, lists concatenated (every key shown somewhere counts)."""
    dicts = [i for i in items if isinstance(i, dict)]
    if dicts:
        keys = {k for d in dicts for k in d}
        return {k: _merge([d[k] for d in dicts if k in d]) for k in keys}
    lists = [i for i in items if isinstance(i, list)]
    if lists:
        return [x for lst in lists for x in lst]
    return items[-1] if items else None


def _missing_keys(model: type[BaseModel], data: Any, path: str) -> list[str]:
    missing = []
    for name, field in model.model_fields.items():
        here = f"{path}.{name}" if path else name
        if not isinstance(data, dict) or name not in data:
            missing.append(here)
            continue
        child = _model_in(field.annotation)
        if child is None:
            continue
        value = data[name]
        origin = get_origin(field.annotation)
        if origin is list:
            # Each key must appear in at least one item of the list.
            missing += _missing_keys(child, _merge(list(value)), f"{here}[]")
        elif origin is dict:
            missing += _missing_keys(child, _merge(list(value.values())), f"{here}.*")
        else:
            missing += _missing_keys(child, value, here)
    return missing


def test_example_playbook_is_valid() -> None:
    playbook = load_playbook(EXAMPLE)
    assert playbook.routing.mode == "assign"


def test_example_playbook_shows_every_key() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    assert _missing_keys(Playbook, data, "") == []


def test_the_coverage_check_can_fail() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    del data["routing"]["pools"]["na_sales"]["members"][0]["capacity"]
    for pool in data["routing"]["pools"].values():
        for member in pool["members"]:
            member.pop("capacity", None)
    assert "routing.pools.*.members[].capacity" in _missing_keys(Playbook, data, "")
