"""The phantom generator's choices, apart from the generator: the command line lists them without importing it."""

from TeethSegmentationLib.phantom.family import FAMILIES as FAMILY_TABLE

SIZES = ("tiny", "small", "realistic")
FOVS = ("crop", "jaws", "head", "lower", "upper")  # lower/upper: one arch, the other outside the scan
DENTITIONS = ("permanent", "mixed")  # mixed: a child of 5-15 years (children.py)
FAMILIES = tuple(FAMILY_TABLE)
GREYS = ("hu", "uncalibrated", "uint16", "uint8", "random")
CONVENTIONS = ("random", "ras_identity", "lps_standard")
