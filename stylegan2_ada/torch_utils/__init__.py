"""Torch helpers and ops that know nothing about GANs."""
