"""`python -m wmilab` runs the `wmilab` command."""

from wmilab.cli import main

main()
