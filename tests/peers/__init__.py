"""Local servers that speak the wire protocols of external LLM APIs, plus the certificates they use."""
