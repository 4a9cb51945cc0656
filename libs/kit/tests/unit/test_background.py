"""The shared background loop: steps run, a failing step does not end it, wake and stop work."""

from __future__ import annotations

import asyncio

import pytest

from kit.background import PeriodicTask

pytestmark = pytest.mark.unit


async def test_a_failing_step_does_not_end_the_loop() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("mongo hiccup")

    task = PeriodicTask("test", step, interval=0.01)
    task.start()
    for _ in range(100):
        if calls >= 3:
            break
        await asyncio.sleep(0.01)
    assert calls >= 3
    assert task.running
    await task.stop()
    assert not task.running


async def test_wake_runs_the_next_step_before_the_interval() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1

    task = PeriodicTask("test", step, interval=60)
    task.start()
    await asyncio.sleep(0.05)
    assert calls == 1
    task.wake()
    await asyncio.sleep(0.05)
    assert calls == 2
    await task.stop()
