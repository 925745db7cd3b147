"""The course's Captum Insights: an explorer of attributions for many inputs at once, with
captum.insights' API (captum 0.9 no longer has it) and a front end of its own.

    from captum_explorer import AttributionVisualizer, Batch, ImageFeature

    visualizer = AttributionVisualizer(models=[model], classes=..., features=[ImageFeature(...)],
                                       dataset=[Batch(...)], score_func=...)
    visualizer.render()                  # as captum's; or:
    insights = open_insights(visualizer)  # the same, and the widget to press Fetch from code

``GeneralFeature`` is there too; captum's ``TextFeature`` is not.
"""
from .engine import (MAX_PASSES, AttributionVisualizer, Batch, Cancelled, GeneralFeature,
                     ImageFeature, InsightsError, InsightsExplorer, Refused, check_settings)

__all__ = ["MAX_PASSES", "AttributionVisualizer", "Batch", "Cancelled", "GeneralFeature",
           "ImageFeature", "InsightsError", "InsightsExplorer", "InsightsWidget", "Refused",
           "check_settings", "open_insights"]


def __getattr__(name: str):  # the widget brings anywidget: imported on first use
    if name in ("InsightsWidget", "open_insights"):
        from . import widget

        return getattr(widget, name)
    raise AttributeError(f"module 'captum_explorer' has no attribute {name!r}")
