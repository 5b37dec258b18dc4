"""Control loop: the watch cache, the input gatherer, one worker per fleet and the status
publisher. Wires logic to I/O; owns no decision of its own."""
