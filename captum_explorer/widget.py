"""The explorer in a notebook cell: an anywidget running the package's ``explorer.js``; page and
kernel speak in JSON traits; a Fetch runs in a thread, stopped by a newer one or an interrupt."""
from __future__ import annotations
import atexit
import queue
import signal
import threading
import time
import weakref
from functools import partial
from pathlib import Path

import anywidget
import traitlets
from IPython import get_ipython
from IPython.display import display

from captum_helpers.language import language as edition_language, say

from .engine import (CANCEL_WAIT_S, MAX_PASSES, SUPERSEDED, AttributionVisualizer, Cancelled,
                     InsightsError, InsightsExplorer, check_settings)

__all__ = ["CANCEL_WAIT_S", "HEARTBEAT_S", "INTERRUPTED", "InsightsWidget", "open_insights"]
FRONT_END = Path(__file__).with_name("explorer.js")  # the page, an ES module
HEARTBEAT_S = 2.0  # the kernel tells each widget it is alive this often; silence means it is gone
INTERRUPTED = ("Stopped: the kernel was interrupted.", "已停止：内核被中断了。")


class InsightsWidget(anywidget.AnyWidget):
    """The explorer's page: ``fetch()`` presses Fetch from Python, ``close()`` stops it."""
    insights_config = traitlets.Dict().tag(sync=True)
    config = traitlets.Dict().tag(sync=True)
    output = traitlets.List().tag(sync=True)
    label_details = traitlets.Dict().tag(sync=True)
    attribution = traitlets.Dict().tag(sync=True)
    status = traitlets.Dict().tag(sync=True)  # {"state": ..., "text": ..., "seq": n}
    heartbeat_s = traitlets.Float(HEARTBEAT_S).tag(sync=True)
    language = traitlets.Unicode("en").tag(sync=True)  # "en" or "zh": the edition's, when made

    def __init__(self, visualizer: AttributionVisualizer, max_passes: int = MAX_PASSES,
                 **kwargs) -> None:
        self._esm = FRONT_END.read_text(encoding="utf-8")
        super().__init__(**{"language": edition_language(), **kwargs})
        self._t = partial(say, lang=self.language)  # _t(english, chinese): in its language
        self.explorer = InsightsExplorer(visualizer, max_passes, language=self.language)
        self.insights_config = self.explorer.config()
        self._seq, self._done, self._jobs, self._worker = (
            0, threading.Event(), queue.SimpleQueue(), None)
        self._done.set()
        self._say("idle", self._t("Pick a method and press Fetch.",
                                  "选择一种方法，然后点击 Fetch。"))
        _watch_interrupts()
        _beating(self)

    def _say(self, state: str, text: str, **more) -> None:
        self._seq += 1
        self.status = {"state": state, "text": text, "seq": self._seq, **more}

    @traitlets.observe("config")
    def _on_fetch(self, change: dict) -> None:
        if not change["new"]:
            return
        ticket = self.explorer.ticket()  # taken here, in the order the presses came
        self.config = {}  # so that the same settings sent again are a change too
        self._done.clear()
        try:
            settings = check_settings(change["new"], self.language)
        except InsightsError as err:
            return self._finish(ticket, error=err)
        method, started = settings["attribution_method"], time.monotonic()
        self._say("computing", self._t(f"{method}: choosing the photos…",
                                       f"{method}：正在挑选照片…"))
        def on_photo(done: int, total: int) -> None:
            if ticket == self.explorer._latest:
                self._say("computing", self._t(f"{method}: photo {done + 1} of {total}…",
                                               f"{method}：第 {done + 1} 张照片，共 {total} 张…"))
        self.explorer.on_photo = on_photo
        def done(rows: list) -> None:
            self.output = rows
            took = time.monotonic() - started
            if rows:
                self._say("done", self._t(
                    f"{method}: {len(rows)} photo{'s' * (len(rows) > 1)} in {took:.1f} s. "
                    "Click a class under Predicted to explain it.",
                    f"{method}：{len(rows)} 张照片，用时 {took:.1f} 秒。"
                    "点击 Predicted 下的一个类别来解释它。"), seconds=round(took, 3))
            else:
                self._say("empty", self._t(
                    "No photo matches these filters: clear Filter by Classes or set Prediction to "
                    "All, then press Fetch.",
                    "没有照片符合这些筛选条件：清空 Filter by Classes，或者把 Prediction 设为 All，"
                    "然后点击 Fetch。"))
        self._in_thread(ticket, lambda: self.explorer.fetch(settings, ticket), done)

    @traitlets.observe("label_details")
    def _on_click(self, change: dict) -> None:
        if not (details := change["new"]):
            return
        ticket = self.explorer.ticket()
        self.label_details = {}  # so that the same click again (after an error) is a change too
        self._done.clear()
        self._say("computing", self._t("Explaining the class you clicked…",
                                       "正在解释你点击的类别…"))
        def done(attribution: dict) -> None:
            self.attribution = attribution
            self._say("done", self._t("Done: the map now explains the class you clicked.",
                                      "完成：热图现在解释的是你点击的类别。"))
        self._in_thread(ticket, lambda: self.explorer.attribute(*map(details.get, (
            "inputIndex", "modelIndex", "labelIndex")), ticket), done)

    def _in_thread(self, ticket: int, work, done) -> None:  # one thread: OpenMP starts once
        def job() -> None:
            try:
                result = work()
            except Exception as err:  # any error: shown in the widget, the kernel goes on
                self._finish(ticket, error=err)
            else:
                if ticket == self.explorer._latest:
                    done(result)
                self._finish(ticket)
        self._jobs.put(job)
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="captum-insights-fetch",
                                            daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def _finish(self, ticket: int, error: Exception | None = None) -> None:
        if isinstance(error, Cancelled) and str(error) == SUPERSEDED:
            return  # the newer Fetch reports for itself
        if isinstance(error, Cancelled):
            self._say("stopped", self._t(f"{error} Press Fetch to start again.",
                                         f"{error}点击 Fetch 重新开始。"))
        elif isinstance(error, InsightsError):
            self._say("error", str(error))
        elif error is not None:  # e.g. DeepLift on a model it cannot take
            self._say("error", self._t(
                f"{type(error).__name__}: {error}. Choose another method, or change the model or "
                "the visualizer, then press Fetch.",
                f"{type(error).__name__}: {error}。请换一种方法，或者修改模型或可视化器，"
                "然后点击 Fetch。"))
        self._done.set()

    def fetch(self, attribution_method: str = "Integrated Gradients", prediction: str = "all",
              classes: list | None = None, wait: float | None = 600, **arguments) -> list:
        """Press Fetch as the page does, wait up to ``wait`` seconds and return the rows."""
        self.config = {"attribution_method": attribution_method, "prediction": prediction,
                       "classes": classes or [], "arguments": arguments}
        if wait is not None and not self._done.wait(wait):
            raise TimeoutError(f"the Fetch did not end in {wait} s")
        if self.status.get("state") in ("error", "stopped"):
            raise InsightsError(self.status["text"])
        return self.output

    def stop(self, why: str | None = None) -> None:  # stop a running Fetch; the widget stays
        self.explorer.stop(why or self._t("Stopped.", "已停止。"))

    def close(self) -> None:  # stop a running Fetch (within CANCEL_WAIT_S), remove the widget
        _LIVE.discard(self)
        self.explorer.close()
        self._jobs.put(None)  # the worker thread ends after the job it is on
        super().close()

    def __repr__(self) -> str:  # the text a saved notebook shows where the widget was
        return self._t("Captum Insights (a live widget: run the notebook's cells to see it)",
                       "Captum Insights（一个实时小部件：运行笔记本的单元格即可看到它）")


_LIVE, _watching = weakref.WeakSet(), False  # the open widgets; whether interrupts stop them


def _beating(widget: InsightsWidget) -> None:
    """Tell the widget every HEARTBEAT_S that its kernel is there, so that it notices when not."""
    _LIVE.add(widget)
    alive = weakref.ref(widget)
    def beat() -> None:
        while (each := alive()) is not None and each in _LIVE:
            if each.comm is not None:
                each.send({"beat": time.time()})
            del each  # no reference kept while asleep: a widget nobody holds goes
            time.sleep(HEARTBEAT_S)
    threading.Thread(target=beat, name="captum-insights-heartbeat", daemon=True).start()


def _watch_interrupts() -> None:
    """Kernel -> Interrupt stops Fetches: via ``saved_sigint_handler`` and post_run_cell."""
    global _watching
    kernel = getattr(shell := get_ipython(), "kernel", None)
    if _watching or not hasattr(kernel, "saved_sigint_handler") or (
            threading.current_thread() is not threading.main_thread()):
        return
    previous = kernel.saved_sigint_handler
    def stop_all() -> None:
        for widget in list(_LIVE):
            widget.stop(widget._t(*INTERRUPTED))
    def on_interrupt(signum: int, frame: object) -> None:
        stop_all()
        if callable(previous):
            previous(signum, frame)
    def after_cell(result: object) -> None:
        if isinstance(getattr(result, "error_in_exec", None), KeyboardInterrupt):
            stop_all()
    kernel.saved_sigint_handler = on_interrupt
    if signal.getsignal(signal.SIGINT) is previous:  # not inside a message's handler: set it now
        signal.signal(signal.SIGINT, on_interrupt)
    shell.events.register("post_run_cell", after_cell)
    _watching = True


@atexit.register  # torch still computing in a daemon thread at exit aborts the process
def _close_all() -> None:
    for widget in list(_LIVE):
        widget.explorer.close(timeout=30)


def open_insights(visualizer: AttributionVisualizer, *,
                  max_passes: int = MAX_PASSES) -> InsightsWidget:
    """Show Captum Insights for ``visualizer`` in the cell's output and return the widget."""
    widget = InsightsWidget(visualizer, max_passes=max_passes)
    if get_ipython() is None:
        print(say("Captum Insights is a notebook widget; "
                  "outside a notebook run `python -m captum_course insights`.",
                  "Captum Insights 是笔记本里的小部件；"
                  "在笔记本之外，请运行 `python -m captum_course insights`。"))
    else:
        display(widget)
    return widget
