"""Errors of the shared runtime.

RelayCommonError
├── ModelNotFoundError   a model path or embedded model package is missing
├── ModelLoadError       llama.cpp could not load a GGUF file
├── ContextFullError     more tokens than the model's context window holds
├── ChatTemplateError    a chat template that is not valid, or refuses a conversation
├── TlsFileError         a certificate or key file that cannot be read or is not PEM
└── KeyFileError         an API key file that cannot be read or holds a bad line
"""

from __future__ import annotations


class RelayCommonError(Exception):
    """Base of the shared runtime's errors; the message says what to do."""


class ModelNotFoundError(RelayCommonError):
    """A GGUF file or the package that embeds one is missing."""


class ModelLoadError(RelayCommonError):
    """llama.cpp refused to load a GGUF file."""


class ContextFullError(RelayCommonError):
    """Evaluating more tokens would overflow the model's context window."""


class SettingsFileError(RelayCommonError):
    """A config file that is missing or not valid TOML."""


class ChatTemplateError(RelayCommonError):
    """A chat template that does not compile, or that refuses a conversation when rendered."""


class TlsFileError(RelayCommonError):
    """A TLS certificate or key file that cannot be read or is not PEM."""


class KeyFileError(RelayCommonError):
    """An API key file that cannot be read, holds no key, or has a line that is no key."""
