"""The API's wire vocabulary: JSON encoding and Status errors (imports nothing of kubesim)."""
