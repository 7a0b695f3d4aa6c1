"""Accuracy validation of tonuslab's metrics against the virtual patient's ground truth.

Each module here (``stretch_reflex``, ``hreflex``, ...) defines

``run(seeds: int, out_dir: pathlib.Path | None, quick: bool) -> dict``
    Simulate ``seeds`` sessions per profile, analyse them, compare with the truth and return
    the error table (JSON-serialisable).
``format_table(result: dict) -> str``
    The table as Markdown, as published in ``docs/validation.md``.
"""

#: Validation suites by name, as module paths (imported lazily).
SUITES = {
    "onsets": "tonuslab.validation.onsets",
    "segmentation": "tonuslab.validation.segmentation",
    "stretch": "tonuslab.validation.stretch_reflex",
    "hreflex": "tonuslab.validation.hreflex",
    "hreflex-second": "tonuslab.validation.second_hreflex",
    "real-emg": "tonuslab.validation.real_emg",
}
