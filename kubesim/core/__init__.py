"""The core API without HTTP: the store, the resource registry, per-kind strategies, watches,
selectors, the apiserver's semantics and the garbage collector."""
