"""The per-well side of modelfleet: model bundles (build, verify) and the inference server.

Layers, lowest first: manifest/errors < sensors/training < building; sources < verification <
sessions < bundle_state < dataplane < server < cli. Nothing here imports the operator or kubesim.
"""
