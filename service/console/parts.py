"""What the console keeps per process besides the runtime: the sign-in throttle and the broker
figures of the overview. Held per application (the runtime is the only thing on `app.state`) and
made at the first request, from the runtime's own clients (its Redis client, its settings)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from fastapi import FastAPI, Request

from service.console.auth import SignInThrottle
from service.console.broker import BrokerFigures
from service.runtime import Runtime


@dataclass(frozen=True, slots=True)
class ConsoleParts:
    throttle: SignInThrottle
    broker: BrokerFigures


_PARTS: weakref.WeakKeyDictionary[FastAPI, ConsoleParts] = weakref.WeakKeyDictionary()


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def parts(request: Request) -> ConsoleParts:
    found = _PARTS.get(request.app)
    if found is None:
        rt = runtime(request)
        found = _PARTS.setdefault(request.app, ConsoleParts(SignInThrottle(rt), BrokerFigures(rt.settings)))
    return found
