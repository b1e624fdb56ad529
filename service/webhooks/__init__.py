"""Signed, durable webhooks: Standard Webhooks signing, an SSRF guard, the dispatcher."""
