"""A live view ends when the store gives its session up (issue 32, finding 9)."""

from __future__ import annotations

import asyncio

from consumer.web.live import SIGNED_OUT, Ending, end_when_given_up


def test_a_live_view_ends_when_the_store_marks_its_session_interrupted() -> None:
    """Its gateway gone without an end chunk, nothing would ever close the view: the
    store's mark does, as a session that ended (1000), saying why."""

    async def watched() -> Ending:
        ending = Ending(asyncio.get_running_loop())
        answers: list[bool | Exception] = [False, OSError("the store is away"), False, True]

        async def given_up() -> bool:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer  # a moment without the store: the view goes on
            return answer

        await asyncio.wait_for(end_when_given_up(given_up, ending, every_s=0.01), 5)
        await asyncio.wait_for(ending.reached, 1)
        assert answers == []
        return ending

    ending = asyncio.run(watched())
    assert ending.code == 1000
    assert ending.reason == "interrupted: its gateway went silent (marked by the store)"


def test_a_sign_out_still_closes_with_its_own_code() -> None:
    async def signed_out() -> Ending:
        ending = Ending(asyncio.get_running_loop())
        ending.end("signed out")
        ending.end("interrupted: ...", 1000)  # the first word stands
        await asyncio.wait_for(end_when_given_up(_never, ending, every_s=0.01), 1)
        return ending

    ending = asyncio.run(signed_out())
    assert (ending.code, ending.reason) == (SIGNED_OUT, "signed out")


async def _never() -> bool:
    raise AssertionError("asked the store after the view ended")
