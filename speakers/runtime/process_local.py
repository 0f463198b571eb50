"""One object per process, made at first use and forgotten in a forked child.

MindSpore, FAISS indexes, thread pools and locks must not cross a fork (gunicorn forks its
workers after importing the app): a child that inherited the parent's object would share a
model it cannot run, or an executor whose thread does not exist. Every per-process singleton
of the service is a :class:`ProcessLocal`.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessLocal(Generic[T]):
    """``ProcessLocal(factory).get()``: this process's object, made by ``factory`` at the first call."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pid = os.getpid()
        os.register_at_fork(after_in_child=self._forget)

    def get(self) -> T:
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                self._value, self._pid = self._factory(), os.getpid()
            return self._value

    def peek(self) -> T | None:
        """This process's object if it was made already (never makes it)."""
        value = self._value
        return value if value is not None and self._pid == os.getpid() else None

    def reset(self) -> None:
        """Forget the object: the next :meth:`get` makes a new one."""
        with self._lock:
            self._value = None

    def _forget(self) -> None:
        # In the child right after a fork: the parent's lock may have been held by a thread that
        # does not exist here, so the lock is new too.
        self._lock = threading.Lock()
        self._value = None
