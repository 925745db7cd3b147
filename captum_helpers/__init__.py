"""Helpers for the Captum model-understanding notebooks: the plumbing, not the lesson."""
from .assets import (IMG_DIR, PHOTOS, WALKTHROUGH_PHOTOS, download_walkthrough_photos, photo_label,
                     photo_paths)
from .incremental import IncrementalOcclusion
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
from .language import language, say, use_chinese_font
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
from .progress import progress
from .speed import INTEGRATED_GRADIENTS_BATCH, OCCLUSION_BATCH, fast_model, occlusion_windows

__all__ = [
    "IMG_DIR", "PHOTOS", "WALKTHROUGH_PHOTOS", "download_walkthrough_photos", "photo_label",
    "photo_paths",
    "IMAGENET_MEAN", "IMAGENET_STD", "ImageLoadError", "load_image", "preprocess", "to_hwc",
    "transform", "transform_normalize",
    "language", "say",
    "MODEL_ENV", "Prediction", "categories", "gradcam_layer", "label", "load_model",
    "model_name", "predict", "to_target",
    "default_cmap", "show_image", "progress", "fast_model",
    "INTEGRATED_GRADIENTS_BATCH", "OCCLUSION_BATCH", "occlusion_windows", "IncrementalOcclusion",
]
if language() == "zh":  # the Chinese edition's plots: a CJK font for their titles and labels
    use_chinese_font()
