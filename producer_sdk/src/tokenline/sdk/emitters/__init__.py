"""Emitters: where usage events go, and the wrappers that make sending safe."""

from tokenline.sdk.emitters._background import BackgroundEmitter
from tokenline.sdk.emitters._base import Emitter, InMemoryEmitter, JsonLinesEmitter
from tokenline.sdk.emitters._counters import DROP_REASONS, Counters
from tokenline.sdk.emitters._http import HttpEmitter
from tokenline.sdk.emitters._kafka import KafkaEmitter
from tokenline.sdk.emitters._spool import DiskSpool
from tokenline.sdk.emitters._spooling import SpoolingEmitter, Transport

__all__ = [
    "DROP_REASONS",
    "BackgroundEmitter",
    "Counters",
    "DiskSpool",
    "Emitter",
    "HttpEmitter",
    "InMemoryEmitter",
    "JsonLinesEmitter",
    "KafkaEmitter",
    "SpoolingEmitter",
    "Transport",
]
