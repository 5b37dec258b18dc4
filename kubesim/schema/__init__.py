"""Schemas: CRD structural schemas with CEL rules, metadata validation, the built-in
Kubernetes definitions (below field management and the core API)."""
