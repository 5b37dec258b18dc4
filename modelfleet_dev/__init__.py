"""Developer tooling, never shipped in an image: the demo, the harnesses shared by tests and
benchmarks (clusters, operator-in-a-thread, kubectl, pollers), and the simulated runtime."""
