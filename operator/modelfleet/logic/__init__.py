"""Pure decisions on plain data: revisions, the pod a well needs, planning, the budget,
reactions, status, inventories, verdicts. No I/O, no clock reads, no Kubernetes client."""
