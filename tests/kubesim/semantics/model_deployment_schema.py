"""A ModelDeployment-like openAPIV3Schema exercising every feature the CRD relies on."""

from typing import Any

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["model", "wells"],
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.rollout) || self.rollout.maxSurge != 0 || self.rollout.maxUnavailable != 0",
                    "message": "maxSurge and maxUnavailable cannot both be 0",
                    "fieldPath": ".rollout",
                },
            ],
            "properties": {
                "model": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z0-9-]+$", "maxLength": 63},
                        "version": {"type": "string", "default": "latest"},
                    },
                },
                "replicas": {"type": "integer", "minimum": 0, "maximum": 3, "default": 1},
                "strategy": {
                    "type": "string",
                    "enum": ["RollingUpdate", "Recreate"],
                    "default": "RollingUpdate",
                },
                "rollout": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "maxSurge": {
                            "x-kubernetes-int-or-string": True,
                            "default": "25%",
                            "x-kubernetes-validations": [
                                {
                                    "rule": "type(self) == int || self.matches('^[0-9]+%$')",
                                    "message": "must be an integer or a percentage",
                                }
                            ],
                        },
                        "maxUnavailable": {
                            "x-kubernetes-int-or-string": True,
                            "default": 0,
                            "x-kubernetes-validations": [
                                {
                                    "rule": "type(self) == int ? self >= 0 : int(self.replace('%','')) <= 100",
                                    "message": "must be at most 100%",
                                }
                            ],
                        },
                    },
                },
                "wells": {
                    "type": "array",
                    "maxItems": 10000,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["id"],
                    "x-kubernetes-validations": [
                        {"rule": "size(self) <= 10000"},
                        {
                            "rule": "self.all(w, w.id.startsWith('w'))",
                            "message": "well ids start with w",
                        },
                    ],
                    "items": {
                        "type": "object",
                        "required": ["id"],
                        "x-kubernetes-validations": [
                            {
                                "rule": "!has(self.pin) || self.pin.size() <= 64",
                                "message": "pin too long",
                            }
                        ],
                        "properties": {
                            "id": {"type": "string", "pattern": "^w[0-9]+$", "maxLength": 32},
                            "labels": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "pin": {"type": "string"},
                            "weight": {"type": "number", "default": 1.0},
                        },
                    },
                },
                "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
