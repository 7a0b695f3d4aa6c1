"""Wire formats of third-party acquisition devices (no I/O, nothing of ``acquire``).

Each module holds one device family's public protocol, written from the vendor's documents
(cited in the module docstring): command bytes or strings, frame layouts, checksums and a
streaming decoder that never raises on bad data. The drivers (``acquire.sources.trigno``,
``acquire.sources.bitalino``) and the emulators (``firmware_iface.emulator.trigno``,
``firmware_iface.emulator.bitalino``) share them.
"""
