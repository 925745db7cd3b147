"""Helpers for the Captum model-understanding notebooks: the plumbing, not the lesson."""
from .assets import IMG_DIR, PHOTOS, WALKTHROUGH_PHOTOS, download_walkthrough_photos, photo_paths
from .images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageLoadError,
    load_image,
    preprocess,
    to_hwc,
    transform,
    transform_normalize,
)
from .models import (
    MODEL_ENV,
    Prediction,
    categories,
    gradcam_layer,
    label,
    load_model,
    model_name,
    predict,
    to_target,
)
from .plotting import default_cmap, show_image
from .insights import InsightsServer, build_visualizer, open_insights, photo_label
from .progress import progress
from .speed import fast_model

__all__ = [
    "IMG_DIR", "PHOTOS", "WALKTHROUGH_PHOTOS", "download_walkthrough_photos", "photo_paths",
    "IMAGENET_MEAN", "IMAGENET_STD", "ImageLoadError", "load_image", "preprocess", "to_hwc",
    "transform", "transform_normalize",
    "MODEL_ENV", "Prediction", "categories", "gradcam_layer", "label", "load_model",
    "model_name", "predict", "to_target",
    "default_cmap", "show_image", "progress", "fast_model",
]
__all__ += ["InsightsServer", "build_visualizer", "open_insights", "photo_label"]
