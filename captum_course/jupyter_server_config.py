"""The course's Jupyter server settings: kernels that don't pile up, and a memory meter.

Loaded by ``make lab`` (``python -m captum_course lab`` passes ``--config`` with this file) and,
copied into the image's Jupyter config folder by binder/postBuild, by Binder and hub servers.
JupyterLab keeps every opened notebook's kernel running, each holding PyTorch, a model and its
activations (about 1 GB each: docs/hub.md, *Capacity*, has the measured figures). A
learner who clicks through the course without shutting anything keeps them all. So:

* a kernel nobody has run a cell in for ``cull_idle_timeout`` seconds is shut down, even with
  its notebook still open in a tab (``cull_connected``), never while a cell runs (``cull_busy``).
  20 minutes is no longer than a notebook's slot in the agenda (20-30 minutes), so the kernels
  of the notebooks before the previous one are gone, and longer than a break. A learner who
  comes back to a culled notebook picks the kernel again and runs it from the top.
* the status bar's memory meter (jupyter-resource-usage) shows the server and its kernels
  against the limit the hub sets (``MEM_LIMIT``; on a laptop, the machine's memory) and turns
  red when less than one notebook's kernel would still fit.

Anything here can be changed for one run on the command line, which wins over this file:
``make lab`` takes no arguments, but ``python -m captum_course lab
--MappingKernelManager.cull_idle_timeout=3600`` does.
"""
# ``c`` is the configuration object Jupyter provides while it loads this file.
c = get_config()  # noqa: F821

MINUTES = 60

c.MappingKernelManager.cull_idle_timeout = 20 * MINUTES
c.MappingKernelManager.cull_interval = 1 * MINUTES
c.MappingKernelManager.cull_connected = True  # an open tab does not keep an idle kernel alive
c.MappingKernelManager.cull_busy = False  # Integrated Gradients or Occlusion still running: keep it

# jupyter-resource-usage: red at 75 % of the limit. The largest kernel, notebook 05's after a Fetch,
# holds 2.47 GB (bench/class_load.md): 16 % of the 15 GB limit the hub guide (docs/hub.md) gives a
# learner
c.ResourceUseDisplay.mem_warning_threshold = 0.25
# CPU next to memory, against CPU_LIMIT where the hub sets it
c.ResourceUseDisplay.track_cpu_percent = True
