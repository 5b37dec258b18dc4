"""The per-well inference server: it loads one verified bundle and serves it over OIP V2.

Layers, lowest first: errors < manifest < sources < verification < sessions < bundle_state (with
metrics) < dataplane < server, and annotations < hotswap; cli on top. Names and shapes shared
with the operator (annotations, the gate, load reasons and answers, the digest) are
`runtime_contract`'s. Nothing here imports the operator, the bundle builder, kubesim or the dev
tooling.
"""
