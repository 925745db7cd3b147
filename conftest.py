"""Chooses the model notebooks run with under ``pytest --nbval-lax --notebook-model=...``.

offline:          no network (downloads go to a closed local port) and an empty torch hub
                  cache, exactly what a machine without internet sees: the fallback model.
resnet18-random:  the same, plus a ResNet18 checkpoint with random weights in the temporary
                  TORCH_HOME, so the notebooks take the ResNet18 code path (predictions are
                  meaningless).
"""
import os
import shutil
import tempfile

import pytest

_tmp_dirs: list[str] = []


def pytest_addoption(parser):
    parser.addoption("--notebook-model", choices=["offline", "resnet18-random"], default=None,
                     help="run notebooks offline or on a random-weight ResNet18")


def pytest_configure(config):
    mode = config.getoption("--notebook-model")
    if mode is None:
        return
    from captum_course.jupyter import offline_env

    torch_home = tempfile.mkdtemp(prefix="torch-home-")
    _tmp_dirs.append(torch_home)
    os.environ.update(offline_env(torch_home))  # inherited by the notebook kernels
    # every exercise's check cell follows its solution: one that is not right fails the run
    os.environ["CAPTUM_COURSE_CHECKS"] = "strict"
    if mode == "resnet18-random":
        import torch
        import torchvision
        from captum_helpers.models import RESNET18_URL

        checkpoints = os.path.join(torch_home, "hub", "checkpoints")
        os.makedirs(checkpoints)
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet18().state_dict(),
                   os.path.join(checkpoints, os.path.basename(RESNET18_URL)))
        os.environ["CAPTUM_HELPERS_MODEL"] = "resnet18"


def pytest_unconfigure(config):
    while _tmp_dirs:
        shutil.rmtree(_tmp_dirs.pop(), ignore_errors=True)


@pytest.fixture
def notebook_model(request):
    return request.config.getoption("--notebook-model")
