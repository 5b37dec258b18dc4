"""The HTTP face of the core API (kube-apiserver's URLs, negotiation, watches) and the faults
it can inject."""
