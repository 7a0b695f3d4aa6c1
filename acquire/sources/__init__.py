"""Foreign sources (not wire v1): the URL-scheme registry.

The contract a source implements is :mod:`acquire.sources.base`. Each scheme is a module that
defines ``SPEC`` (a :class:`~acquire.sources.base.SourceSpec`); the module is imported only when
its scheme is used, so ``import acquire.sources`` pulls in no device library. Built in:
``lsl://`` (:mod:`acquire.sources.lsl`), ``trigno://`` (:mod:`acquire.sources.trigno`, a Delsys
Trigno through its TCU SDK) and ``bitalino://`` (:mod:`acquire.sources.bitalino`, a PLUX BITalino
over its serial protocol). Another module
may add a scheme at run time with :func:`register`.
"""

from __future__ import annotations

import importlib
import urllib.parse
from collections.abc import Mapping

from acquire.errors import SourceError
from acquire.sources.base import Decoder, Source, SourceSpec

#: scheme -> module defining ``SPEC`` (imported on first use).
BUILTIN_SCHEMES: dict[str, str] = {
    "lsl": "acquire.sources.lsl",
    "trigno": "acquire.sources.trigno",
    "bitalino": "acquire.sources.bitalino",
}

_registered: dict[str, SourceSpec] = {}


#: The recorder of every foreign source, named like a plugin (loaded on first use): it builds on
#: :class:`acquire.recorder.Recorder`, whose constructor hands it foreign URLs, so neither
#: module imports the other's name at load time (``tests/test_layers.py`` holds the graph
#: acyclic).
SOURCE_RECORDER = "acquire.source_recorder:SourceRecorder"


def source_recorder_class() -> type:
    """The class that records a foreign source (``lsl://``...): :data:`SOURCE_RECORDER`."""
    module_name, _, name = SOURCE_RECORDER.partition(":")
    return getattr(importlib.import_module(module_name), name)


def register(spec: SourceSpec) -> None:
    """Add (or replace) a scheme."""
    _registered[spec.scheme] = spec


def scheme_of(url: str) -> str:
    return urllib.parse.urlsplit(str(url)).scheme.lower()


def is_source_url(url: str) -> bool:
    """True if ``url``'s scheme is a registered foreign source (not a wire-v1 link)."""
    scheme = scheme_of(url)
    return scheme in _registered or scheme in BUILTIN_SCHEMES


def get_spec(scheme: str) -> SourceSpec:
    """The spec of ``scheme``; :class:`SourceError` (one line) if unknown or unavailable."""
    if scheme in _registered:
        return _registered[scheme]
    module_name = BUILTIN_SCHEMES.get(scheme)
    if module_name is None:
        raise SourceError(f"unknown source scheme {scheme}://; known: {', '.join(schemes())}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise SourceError(f"{scheme}:// sources are not available in this build") from None
        raise SourceError(f"{scheme}:// needs {exc.name}, which is not installed") from None
    spec = module.SPEC
    _registered[scheme] = spec
    return spec


def schemes() -> list[str]:
    return sorted(set(BUILTIN_SCHEMES) | set(_registered))


def open_source(url: str) -> Source:
    """A live :class:`~acquire.sources.base.Source` for ``url`` (not opened yet)."""
    return get_spec(scheme_of(url)).open(url)


def decoder_for(url: str, description: Mapping) -> Decoder:
    """The decoder of ``url``'s scheme, built from a journalled description."""
    return get_spec(scheme_of(url)).decoder(description)


__all__ = [
    "BUILTIN_SCHEMES",
    "SourceSpec",
    "decoder_for",
    "get_spec",
    "is_source_url",
    "open_source",
    "register",
    "scheme_of",
    "schemes",
]
