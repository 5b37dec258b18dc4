"""Field management and patches: managedFields, server-side apply, merge/JSON/strategic
merge patches (uses schemas; knows nothing of storage or HTTP)."""
