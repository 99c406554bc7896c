"""A bounded set of connection identities that forgets the oldest first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class RecentSet:
    """Remembers the last ``capacity`` keys added; ``add`` says whether a key is new."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.evictions = 0
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Record ``key``; False if it was already there."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
            self.evictions += 1
        return True
