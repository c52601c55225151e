"""The test suite: tiers in unit/, integration/, e2e/; shared helpers in support/."""
