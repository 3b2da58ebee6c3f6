"""Aggregators' daily registries: reading their files and the rules the diff applies."""
