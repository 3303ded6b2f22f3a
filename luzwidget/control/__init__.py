"""Control: the :class:`~luzwidget.control.run.Run` and what drives it (the driver, the
boundary policy, breakpoints, Ctrl-C), plus the seam through which features plug in."""
