"""What the loop and the thread driving it tell each other, per run (``engine.flags``)."""

from __future__ import annotations

__all__ = ["LoopFlags"]


class LoopFlags:
    """What the loop and the thread driving it tell each other, per run.

    Attributes
    ----------
    listening : bool
        The loop yields each event only while its driver listens (stepping, breakpoints,
        a pending command or pause); free-running it skips the yields.
    in_user_code : bool
        True while user code runs (callbacks, forward, loss, backward): a second Ctrl-C
        may interrupt there at once; anywhere else it waits for the next event.
    stage : str
        The part of the step running now (``"forward"``, ``"loss"``, ...), named in a fault.
    check_target : bool
        True until the first training loss of a fit has checked the target's shape.
    """

    __slots__ = ("check_target", "in_user_code", "listening", "stage")

    def __init__(self) -> None:
        self.listening = True
        self.in_user_code = False
        self.stage = "forward"
        self.check_target = False

    def __repr__(self) -> str:
        return (
            f"<LoopFlags listening={self.listening} in_user_code={self.in_user_code} "
            f"stage={self.stage!r}>"
        )
