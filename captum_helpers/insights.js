// Captum Insights' own front end inside an anywidget (captum_helpers/insights.py). Above this
// file, insights.py puts captum's built widget bundle, which calls `define(deps, factory)` as an
// AMD module asking for "@jupyter-widgets/base" and "moment". Here the factory gets the two things
// it takes from the first, Backbone style (DOMWidgetModel, DOMWidgetView), and no moment (only
// Chart.js's optional date adapter wants it, and skips itself without it). Its view talks to a
// model through get, save, on("change:...") and attributes: given here on top of anywidget's model.

const base = {
  DOMWidgetModel: { extend: (proto) => proto, prototype: { defaults: () => ({}) } },
  DOMWidgetView: {
    extend: ({ initialize }) => function View(options) {
      Object.assign(this, options);
      initialize.call(this);
    },
  },
};
const WAITING_MS = 2000; // a Fetch the kernel has not taken up by then: it is running a cell
// The lines this file writes itself, in the edition's language (the widget's `language` trait);
// the kernel sends its own statuses in that language too.
const TEXTS = {
  en: {
    lost: (s) => `No word from the kernel for ${s} s: it was restarted or shut down, ` +
      "or the connection to it dropped. Run the notebook's cells again to open a new explorer.",
    waiting: "Waiting for the kernel: it is running a cell. The Fetch starts when the cell ends.",
  },
  zh: {
    lost: (s) => `内核已经 ${s} 秒没有回应：它被重启或关闭了，或者与它的连接断开了。` +
      "请重新运行笔记本的单元格，打开一个新的探索器。",
    waiting: "正在等待内核：它正在运行一个单元格。这个单元格结束后 Fetch 才会开始。",
  },
};

function render({ model, el }) {
  const { CaptumInsightsView } = captumFactory(base, undefined);
  const texts = TEXTS[model.get("language")] || TEXTS.en;
  const status = document.createElement("div");
  const app = document.createElement("div");
  status.className = "captum-insights-status";
  status.setAttribute("role", "status");
  status.style.cssText = "padding:6px 10px;margin:0 0 6px;font:13px sans-serif;border-left:4px solid #888;background:#f4f4f4;color:#222";
  el.append(status, app);

  let page = null; // Insights' React component: its state says whether it is loading
  let lastBeat = Date.now(), pressed = null;
  const listeners = [];
  const listen = (event, handler) => { model.on(event, handler); listeners.push([event, handler]); };
  const backbone = {
    attributes: { get label_details() { return model.get("label_details"); } },
    get: (key) => model.get(key),
    on(event, callback, context) {
      page = context;
      listen(event, () => callback.call(context, backbone, model.get(event.replace(/^change:/, ""))));
    },
    save(attributes) {
      for (const [key, value] of Object.entries(attributes)) model.set(key, value);
      model.save_changes();
      pressed = Date.now();
    },
  };

  const colours = { error: "#c33", stopped: "#c80", lost: "#c33", computing: "#36c", done: "#393", empty: "#c80" };
  function say(state, text) {
    status.dataset.state = state;
    status.textContent = text;
    status.style.borderLeftColor = colours[state] || "#888";
    status.style.background = state === "error" || state === "lost" ? "#fee" : "#f4f4f4";
  }
  function idle(rows) { // the page spins until rows arrive: stop it where none will
    if (!page) return;
    if (page.state.loading) page.setState(rows ? { loading: false, data: rows } : { loading: false });
    const clicked = page.state.callback; // a row waiting for the class it was clicked for
    if (clicked) page.setState({ callback: null }, clicked);
  }
  function showStatus() {
    const { state = "idle", text = "" } = model.get("status") || {};
    pressed = null;
    say(state, text);
    if (state === "error" || state === "stopped") idle();
    if (state === "empty") idle([]);
  }
  listen("change:status", showStatus);
  listen("msg:custom", (message) => { if (message && message.beat) lastBeat = Date.now(); });

  const watch = setInterval(() => {
    const silent = Date.now() - lastBeat, lost = 4000 * model.get("heartbeat_s");
    if (silent > lost) {
      say("lost", texts.lost(Math.round(silent / 1000)));
      idle();
    } else if (status.dataset.state === "lost") {
      showStatus();
    } else if (pressed && Date.now() - pressed > WAITING_MS) {
      say("waiting", texts.waiting);
    }
  }, 1000);

  new CaptumInsightsView({ model: backbone, el: app });
  showStatus();
  return () => {
    clearInterval(watch);
    for (const [event, handler] of listeners) model.off(event, handler);
  };
}

export default { render };
