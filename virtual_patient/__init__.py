"""Virtual patient: a deterministic physiological simulator with exact ground truth.

Pure NumPy/SciPy; imports no device I/O and nothing else of tonuslab.
"""
