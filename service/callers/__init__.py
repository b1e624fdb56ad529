"""Callers of the service: API keys, authentication, per-key rate limits, usage and budgets."""
