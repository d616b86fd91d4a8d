"""brainpad: brain-age workflow from BIDS T1w MRI to global and local brain-PAD."""

__version__ = "0.1.0"
