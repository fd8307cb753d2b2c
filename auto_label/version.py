"""The version of auto-label. A leaf module: every layer may import it; it imports nothing."""

__version__ = "0.1.0"
