"""Publisher: throttled ticks, and urgent wakes (acks, state changes) that do not wait."""

from __future__ import annotations

import asyncio

from luzwidget.widgets.publisher import Publisher


def test_a_plain_wake_waits_for_min_gap_an_urgent_one_does_not() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ticks: list[float] = []
        pub = Publisher(lambda: ticks.append(loop.time()) is not None, min_gap=30.0)
        pub.ticked()  # a tick just happened
        pub.wake()
        assert pub._handle is not None
        assert pub._handle.when() > loop.time() + 20
        pub.wake(urgent=True)  # rescheduled: due now
        assert pub._handle is not None
        assert pub._handle.when() <= loop.time()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if ticks:
                break
        assert len(ticks) == 1
        pub.close()

    asyncio.run(main())


def test_an_urgent_wake_from_another_thread_does_not_wait() -> None:
    async def main() -> None:
        ticks: list[int] = []
        pub = Publisher(lambda: ticks.append(1) is not None and False, min_gap=30.0)
        pub.ticked()
        pub.wake()  # due in 30 s
        await asyncio.to_thread(pub.wake, True)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if ticks:
                break
        assert ticks == [1]
        pub.close()

    asyncio.run(main())
