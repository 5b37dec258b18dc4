"""Unit tests of kubesim's pure API-semantics modules (errors, selectors, patching, schema, tables, openapi)."""
