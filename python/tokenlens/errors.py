"""The exception tree. Everything tokenlens raises on purpose is a `TokenlensError`, except a missing
input file, which is the standard `FileNotFoundError`."""

from tokenlens._core import InvalidInputError, TokenizerError, TokenlensError

__all__ = ["InvalidInputError", "TokenizerError", "TokenlensError"]
