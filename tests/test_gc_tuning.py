"""The collector is tuned only while a run or a replay streams, and left as it was."""

from __future__ import annotations

import gc

import pytest

from hostcore.gc_tuning import STREAMING_THRESHOLDS, streaming_collection


def test_thresholds_are_the_streaming_ones_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with streaming_collection():
        assert gc.get_threshold() == STREAMING_THRESHOLDS != before
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), streaming_collection():
        raise RuntimeError("a run that fails")
    assert gc.get_threshold() == before
