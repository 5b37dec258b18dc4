"""How the API presents itself beyond JSON objects: server-side tables, OpenAPI documents,
protobuf bodies (pure; used by the HTTP layer)."""
