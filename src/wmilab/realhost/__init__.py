"""Calling real hosts: `wmilab query` and `wmilab doctor` on wmilab's own client."""
