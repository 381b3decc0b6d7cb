"""The sweep that times out HTTP connections."""

from __future__ import annotations

import asyncio
import math

from overtone.transport.deadlines import Deadlines


class Conn:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = 0

    def timed_out(self) -> None:
        self.fired += 1
        self.deadline = math.inf


async def test_only_late_connections_time_out_within_one_resolution() -> None:
    loop = asyncio.get_running_loop()
    now = loop.time()
    late, later, never = Conn(now + 0.05), Conn(now + 60), Conn(math.inf)
    conns = {late, later, never}
    sweep = Deadlines(loop, conns, 0.5, 60)
    assert sweep.resolution == 0.1  # a fifth of the shortest time-out
    sweep.start()
    try:
        await asyncio.sleep(0.05 + 2 * sweep.resolution)
    finally:
        sweep.close()
    assert (late.fired, later.fired, never.fired) == (1, 0, 0)


async def test_resolution_is_at_most_a_second() -> None:
    assert Deadlines(asyncio.get_running_loop(), set(), 10, 60).resolution == 1.0
