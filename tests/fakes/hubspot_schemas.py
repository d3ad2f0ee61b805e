"""JSON Schemas of the HubSpot request bodies revbot sends, written from HubSpot's API reference.

Top-level keys HubSpot does not document are refused (`additionalProperties: false`), as are
batches over 100 inputs, search filters with an unknown operator and bodies without `inputs`.
"""

from __future__ import annotations

from typing import Any

OPERATORS = [
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
]
_STRINGS = {"type": "array", "items": {"type": "string"}}
_PROPERTIES = {"type": "object", "additionalProperties": {"type": "string"}}
_ASSOCIATION = {
    "type": "object",
    "required": ["to", "types"],
    "additionalProperties": False,
    "properties": {
        "to": {
            "type": "object",
            "required": ["id"],
            "additionalProperties": False,
            "properties": {"id": {"type": "string"}},
        },
        "types": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["associationCategory", "associationTypeId"],
                "additionalProperties": False,
                "properties": {
                    "associationCategory": {
                        "enum": ["HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"]
                    },
                    "associationTypeId": {"type": "integer"},
                },
            },
        },
    },
}


def _inputs(item: dict[str, Any], max_items: int = 100) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "maxItems": max_items, "items": item}


BATCH_UPDATE: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "additionalProperties": False,
    "properties": {
        "inputs": _inputs(
            {
                "type": "object",
                "required": ["id", "properties"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "idProperty": {"type": "string"},
                    "objectWriteTraceId": {"type": "string"},
                    "properties": _PROPERTIES,
                },
            }
        )
    },
}

BATCH_READ: dict[str, Any] = {
    "type": "object",
    "required": ["inputs", "properties", "propertiesWithHistory"],
    "additionalProperties": False,
    "properties": {
        "inputs": _inputs(
            {
                "type": "object",
                "required": ["id"],
                "additionalProperties": False,
                "properties": {"id": {"type": "string", "minLength": 1}},
            }
        ),
        "properties": _STRINGS,
        "propertiesWithHistory": _STRINGS,
        "idProperty": {"type": "string"},
    },
}

BATCH_CREATE: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "additionalProperties": False,
    "properties": {
        "inputs": _inputs(
            {
                "type": "object",
                "required": ["properties"],
                "additionalProperties": False,
                "properties": {
                    "properties": _PROPERTIES,
                    "associations": {"type": "array", "items": _ASSOCIATION},
                    "objectWriteTraceId": {"type": "string"},
                },
            }
        )
    },
}

_FILTER = {
    "type": "object",
    "required": ["propertyName", "operator"],
    "additionalProperties": False,
    "properties": {
        "propertyName": {"type": "string", "minLength": 1},
        "operator": {"enum": OPERATORS},
        "value": {"type": "string"},
        "highValue": {"type": "string"},
        "values": _STRINGS,
    },
}

SEARCH: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "filterGroups": {
            "type": "array",
            "maxItems": 5,
            "items": {
                "type": "object",
                "required": ["filters"],
                "additionalProperties": False,
                "properties": {"filters": {"type": "array", "maxItems": 6, "items": _FILTER}},
            },
        },
        "sorts": {
            "type": "array",
            "maxItems": 1,
            "items": {
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "object",
                        "required": ["propertyName"],
                        "additionalProperties": False,
                        "properties": {
                            "propertyName": {"type": "string"},
                            "direction": {"enum": ["ASCENDING", "DESCENDING"]},
                        },
                    },
                ]
            },
        },
        "query": {"type": "string"},
        "properties": _STRINGS,
        "limit": {"type": "integer", "minimum": 1, "maximum": 200},
        "after": {"type": "string", "pattern": "^[0-9]+$"},
    },
}

ASSOCIATIONS_BATCH_READ: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "additionalProperties": False,
    "properties": {
        "inputs": _inputs(
            {
                "type": "object",
                "required": ["id"],
                "additionalProperties": False,
                "properties": {"id": {"type": "string"}, "after": {"type": "string"}},
            },
            max_items=1000,
        )
    },
}
