"""The model of Windows behaviour: plain values and pure functions, no I/O."""
