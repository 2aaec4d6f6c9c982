"""Registries of generator and discriminator architectures (filled by the modules that define them)."""

from medgan.registry import Registry

GENERATORS: Registry = Registry("generator")
DISCRIMINATORS: Registry = Registry("discriminator")
