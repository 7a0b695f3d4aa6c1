"""Subcommands of the ``tonuslab`` CLI, one module each (see :mod:`tonuslab.cli`)."""
