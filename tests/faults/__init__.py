"""Faults that land on purpose: relays that stand between an operator and what it talks to."""
