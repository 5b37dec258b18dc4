"""Entry points: kopf handlers, the operator's main, the `modelfleet` command line."""
