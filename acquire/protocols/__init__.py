"""Stimulation and prompting protocols the recorder can run (``tonuslab record --protocol NAME``).

Each protocol module defines a plan (what to do, checked against host-side safety limits before
anything is sent) and a runner that drives the device client. See ``docs/architecture.md``
("Contract: H-reflex recording protocol").
"""

#: Protocol modules by name (imported lazily by the recorder).
PROTOCOLS = {"hreflex": "acquire.protocols.hreflex", "stretch": "acquire.protocols.stretch"}
