"""Helpers the tiers share: drawn images, a running stack and its clients, proxies, receivers."""
