"""The core: one process, one loop, no threads.

The vocabulary (events, exceptions, states, records), the context and its engine, the loop
generators, the data and device plumbing. Nothing here imports any other part of luzwidget
(``metrics``, ``callbacks``, ``control`` and the features sit above it).
"""
