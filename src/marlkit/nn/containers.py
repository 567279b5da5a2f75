"""``ModuleMap``: an ``nn.ModuleDict`` that type checkers know the modules of."""

from __future__ import annotations

from collections.abc import ItemsView, ValuesView
from typing import TYPE_CHECKING, Generic, TypeVar

from torch import nn

M = TypeVar("M", bound=nn.Module)


class ModuleMap(nn.ModuleDict, Generic[M]):
    """An ``nn.ModuleDict`` whose modules are all ``M``. At run time it is a plain ``ModuleDict`` (same state-dict
    keys, no extra work per lookup); to a type checker, indexing it gives an ``M`` where ``ModuleDict`` gives an
    ``nn.Module``."""

    if TYPE_CHECKING:

        def __getitem__(self, key: str) -> M: ...

        def items(self) -> ItemsView[str, M]: ...

        def values(self) -> ValuesView[M]: ...
