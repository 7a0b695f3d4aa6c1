"""``python -m tonuslab``."""

from tonuslab.cli import console_main

if __name__ == "__main__":  # spawned worker processes import this module too
    console_main()
