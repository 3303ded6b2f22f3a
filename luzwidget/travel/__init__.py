"""Time travel: snapshots kept in a bounded store, rewinds replayed exactly, branches."""
