"""medgan: generative adversarial networks for medical images."""

__version__ = "0.1.0"
