"""Choices shared by the training code and the ``photoseek train`` command line.

Kept apart from :mod:`engine.training.features`, which imports torch: the command line is
built on every ``photoseek`` call, and searching must not load torch.
"""

from __future__ import annotations

#: How the backbone's last feature map becomes the image feature (see features.Backbone).
POOLINGS = ("avg", "grid", "avg+colour", "grid+colour", "regions")
