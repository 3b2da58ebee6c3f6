"""`frozen`: the frozen dataclass of per-call objects, without its cost at run time."""

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def frozen(cls: type[T]) -> type[T]:
    """A frozen dataclass to the type checker, a plain slotted one at run time.

    A frozen dataclass sets each field through object.__setattr__ (2.3 against 0.46 us for
    seven fields), and a gateway call builds several such objects. mypy refuses assignments
    to their fields as for any frozen dataclass, and equality and hashing are the same; only
    nothing stops an assignment at run time: the type check is the guard.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)
