"""The simulated node: the kubelet and the container-runtime plugins that run what is in a pod."""
