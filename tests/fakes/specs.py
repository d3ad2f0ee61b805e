"""Locate the read-only vendor specs shared next to the repository (`<repo>/../shared/specs`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _expected_specs_dir() -> Path:
    override = os.environ.get("REVBOT_SHARED_SPECS")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "specs"


def specs_dir() -> Path | None:
    """Return the shared specs folder, or None when it is not present on this machine."""
    candidate = _expected_specs_dir()
    return candidate if candidate.is_dir() else None


def require_spec(*parts: str) -> Path:
    """Return the path of a spec file, skipping the calling test when it is unavailable."""
    base = specs_dir()
    if base is None:
        pytest.skip(
            f"shared specs not found at {_expected_specs_dir()} "
            "(set REVBOT_SHARED_SPECS to their location)"
        )
    path = base.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"spec file {path} is missing")
    return path


def load_spec_json(*parts: str) -> Any:
    """Load a JSON spec file, skipping the calling test when it is unavailable."""
    return json.loads(require_spec(*parts).read_text(encoding="utf-8"))
