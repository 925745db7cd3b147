"""The course's Captum Insights: captum.insights' API (gone in captum 0.9; images only, no
``TextFeature`` or ``GeneralFeature``) and a front end of its own; ``open_insights(visualizer)``
shows it and returns the widget."""
from .engine import (MAX_PASSES, AttributionVisualizer, Batch, Cancelled, ImageFeature,
                     InsightsError, InsightsExplorer, Refused, check_settings)

__all__ = ["MAX_PASSES", "AttributionVisualizer", "Batch", "Cancelled", "ImageFeature",
           "InsightsError", "InsightsExplorer", "InsightsWidget", "Refused", "check_settings",
           "open_insights"]


def __getattr__(name: str):  # the widget brings anywidget: imported on first use
    if name in ("InsightsWidget", "open_insights"):
        from . import widget
        return getattr(widget, name)
    raise AttributeError(f"module 'captum_explorer' has no attribute {name!r}")
