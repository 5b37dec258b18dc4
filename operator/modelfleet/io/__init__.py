"""API I/O: the Kubernetes client, the executor that carries plans out, the informers. The only
layer that talks to the apiserver."""
