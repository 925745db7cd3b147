// Captum Insights' page, rebuilt for the course in plain DOM: captum 0.8 shipped it as a React
// app, which captum 0.9 dropped. One ES module, no imports, no build, no network of its own.
// - mount(el, { config, language, send }) draws the page and returns ui = { rows, row, status,
//   destroy }; the caller answers send("fetch", settings) and send("attribute", details).
// - default { render }: the notebook's anywidget (captum_explorer/widget.py), over traits.
// - mountServer(el, baseUrl, language): the page of `python -m captum_course insights`.
// - mountStatic(el, data): the website's copy, with results computed when the site was built.
// Text from the data (class names, labels, messages) only ever goes in through textContent.

const P = "captum-insights"; // every class name and the style element's id start with it
const WAITING_MS = 2000; // a request the kernel has not taken up by then: it is running a cell
const MAX_OPTIONS = 20; // class names the tag input offers at once
const STATIC_ROWS = 4; // photos one Fetch shows on the website, as the kernel's explorer does

// Every line the page writes itself, in the edition's language. The controls keep Insights'
// English names in both: the notebooks quote them.
const TEXTS = {
  en: {
    lost: (s) => `No word from the kernel for ${s} s: it was restarted or shut down, or the ` +
      "connection to it dropped. Run the notebook's cells again to open a new explorer.",
    waiting: "Waiting for the kernel: it is running a cell. The Fetch starts when the cell ends.",
    loading: "Loading…",
    noRows: "No rows.",
    noArguments: "No arguments",
    computing: "Computing…",
    rows: (n) => `${n} row${n === 1 ? "" : "s"}.`,
    explaining: "Explaining the class you clicked…",
    explained: "Done: the map now explains the class you clicked.",
    serverGone: "The server did not answer: is `python -m captum_course insights` still running?",
    answered: (code) => `The server answered ${code} without saying why.`,
    empty: "No photo matches these filters: clear Filter by Classes or set Prediction to All, " +
      "then press Fetch.",
    staticArguments: "This page holds results computed at each method's default arguments when " +
      "the site was built; to try others, run the notebook.",
    staticMissing: (m) => `${m}: this page holds no results for it; to try it, run the notebook.`,
    staticDone: (m, n) => `${m}: ${n} photo${n === 1 ? "" : "s"}, computed when the site was ` +
      "built. Click a class under Predicted to explain it.",
    staticRow: "No such row: press Fetch again.",
  },
  zh: {
    lost: (s) => `内核已经 ${s} 秒没有回应：它被重启或关闭了，或者与它的连接断开了。` +
      "请重新运行笔记本的单元格，打开一个新的探索器。",
    waiting: "正在等待内核：它正在运行一个单元格。这个单元格结束后 Fetch 才会开始。",
    loading: "加载中…",
    noRows: "没有结果。",
    noArguments: "没有参数",
    computing: "正在计算…",
    rows: (n) => `${n} 行。`,
    explaining: "正在解释你点击的类别…",
    explained: "完成：热图现在解释的是你点击的类别。",
    serverGone: "服务器没有回应：`python -m captum_course insights` 还在运行吗？",
    answered: (code) => `服务器返回了 ${code}，但没有说明原因。`,
    empty: "没有照片符合这些筛选条件：清空 Filter by Classes，或者把 Prediction 设为 All，" +
      "然后点击 Fetch。",
    staticArguments: "这个页面只有网站构建时用各方法默认参数算好的结果；要试别的参数，请运行笔记本。",
    staticMissing: (m) => `${m}：这个页面没有它的结果；要试它，请运行笔记本。`,
    staticDone: (m, n) => `${m}：${n} 张照片，在网站构建时算好。点击 Predicted 下的一个类别来解释它。`,
    staticRow: "没有这一行：请再点击一次 Fetch。",
  },
};
const textsFor = (language) => TEXTS[language] || TEXTS.en;

const CSS = `
.${P}{font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  color:#1c1e21;background:#f4f5f7;border:1px solid #dadde1;border-radius:6px;max-width:100%;
  box-sizing:border-box;overflow:hidden;text-align:left}
.${P} *,.${P} *::before,.${P} *::after{box-sizing:border-box}
.${P} [hidden]{display:none!important}
.${P} .${P}-status{margin:8px 8px 0;padding:6px 10px;background:#fff;border-left:4px solid #8d949e;
  border-radius:2px;min-height:2.2em;white-space:pre-wrap;overflow-wrap:anywhere}
.${P} .${P}-status[data-state=error],.${P} .${P}-status[data-state=lost]{border-left-color:#d0312d;
  background:#fdecea}
.${P} .${P}-status[data-state=stopped],.${P} .${P}-status[data-state=empty],
.${P} .${P}-status[data-state=waiting]{border-left-color:#e68a00;background:#fff6e5}
.${P} .${P}-status[data-state=computing]{border-left-color:#2f6fdb}
.${P} .${P}-status[data-state=done]{border-left-color:#2e9e44}
.${P} .${P}-header{padding:10px 16px;font-size:1.35em;font-weight:700;letter-spacing:.02em;
  text-transform:uppercase;border-bottom:3px solid #ee4c2c;background:#fff;margin-top:8px}
.${P} .${P}-filters{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:flex-start;
  background:#fff;padding:10px 16px;border-bottom:1px solid #dadde1}
.${P} .${P}-filter{flex:1 1 170px;min-width:0}
.${P} .${P}-filter-classes{flex:2 1 220px}
.${P} .${P}-filter-title{display:block;font-weight:700;margin-bottom:6px}
.${P} .${P}-filter-end{flex:0 0 auto;align-self:center}
.${P} select,.${P} input{font:inherit;color:inherit;max-width:100%}
.${P} select,.${P} .${P}-args input{border:1px solid #c4c8cd;border-radius:3px;padding:3px 6px;
  background:#fff}
.${P} .${P}-args{display:flex;flex-direction:column;gap:4px;color:#606770}
.${P} .${P}-args label{display:flex;flex-wrap:wrap;align-items:center;gap:4px 8px}
.${P} .${P}-args input[type=number]{width:8em}
.${P} .${P}-fetch{font:inherit;font-size:1.1em;font-weight:700;color:#fff;background:#ee4c2c;
  border:1px solid #ee4c2c;border-radius:4px;padding:8px 22px;cursor:pointer}
.${P} .${P}-fetch:hover{background:#d7432a}
.${P} .${P}-fetch:focus-visible,.${P} button:focus-visible{outline:2px solid #2f6fdb;outline-offset:2px}
.${P} .${P}-tags{position:relative;display:flex;flex-wrap:wrap;gap:4px;align-items:center;
  border:1px solid #c4c8cd;border-radius:3px;background:#fff;padding:3px 4px;cursor:text}
.${P} .${P}-tags:focus-within{border-color:#8d949e}
.${P} .${P}-tag{display:inline-flex;align-items:center;gap:2px;background:#f1f1f1;
  border:1px solid #d1d1d1;border-radius:2px;padding:1px 2px 1px 6px;max-width:100%;
  overflow-wrap:anywhere}
.${P} .${P}-tag button{border:0;background:none;color:#8d949e;cursor:pointer;font:inherit;
  font-size:1.1em;line-height:1;padding:0 4px}
.${P} .${P}-tag button:hover{color:#d0312d}
.${P} .${P}-tags input{flex:1 1 8em;min-width:6em;border:0;outline:none;padding:3px 2px;
  background:none}
.${P} .${P}-options{position:absolute;z-index:10;top:100%;left:-1px;right:-1px;margin:2px 0 0;
  padding:0;list-style:none;background:#fff;border:1px solid #c4c8cd;border-radius:2px;
  box-shadow:0 2px 6px rgba(0,0,0,.2);max-height:16em;overflow-y:auto}
.${P} .${P}-options li{padding:4px 8px;cursor:pointer;border-bottom:1px solid #eee}
.${P} .${P}-options li:hover{background:#eee}
.${P} .${P}-options li[aria-selected=true]{background:#b7cfe0}
.${P} .${P}-options mark{background:none;color:inherit;font-weight:700;text-decoration:underline}
.${P} .${P}-results{padding:8px}
.${P} .${P}-results-title{font-weight:700;font-size:1.1em;margin:4px 8px 8px;padding:0}
.${P} .${P}-loading{display:flex;align-items:center;gap:10px;padding:24px;color:#606770}
.${P} .${P}-spinner{display:inline-block;width:24px;height:24px;border-radius:50%;flex:none;
  border:4px solid #ee4c2c;border-color:#ee4c2c transparent;animation:${P}-spin 1.2s linear infinite}
@keyframes ${P}-spin{to{transform:rotate(360deg)}}
.${P} .${P}-none{padding:16px;color:#606770}
.${P} .${P}-row{position:relative;display:flex;flex-wrap:wrap;gap:12px 20px;background:#fff;
  border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.16);padding:12px 14px;margin:0 0 12px;
  transition:opacity .2s}
.${P} .${P}-row.${P}-pending{opacity:.5;pointer-events:none}
.${P} .${P}-note{position:absolute;top:6px;right:10px;font-style:italic;color:#606770}
.${P} .${P}-col{flex:0 1 150px;min-width:0;overflow-wrap:anywhere}
.${P} .${P}-col-predicted{flex-basis:190px}
.${P} .${P}-col-feature{flex:1 1 240px}
.${P} .${P}-col-title{font-weight:700;border-bottom:2px solid #c1c1c1;padding-bottom:2px;
  margin-bottom:8px}
.${P} .${P}-class{display:block;width:100%;text-align:left;font:inherit;margin:0 0 4px;
  padding:3px 8px;border:1px solid #ee4c2c;border-radius:4px;background:#fff;color:#ee4c2c;
  cursor:pointer;overflow-wrap:anywhere}
.${P} .${P}-class:hover{background:#fdf0ed}
.${P} .${P}-class.active{background:#ee4c2c;color:#fff;font-weight:700;cursor:default}
.${P} .${P}-contribution{margin-bottom:6px}
.${P} .${P}-track{display:flex;align-items:center;gap:6px}
.${P} .${P}-bar-box{flex:1 1 auto;min-width:40px}
.${P} .${P}-bar{height:10px;border-radius:2px;background:#80aaff;min-width:1px}
.${P} .${P}-figures{display:flex;flex-wrap:wrap;gap:8px 12px}
.${P} figure{margin:0;max-width:224px;flex:0 1 224px;text-align:center}
.${P} figure img{display:block;width:100%;max-width:224px;height:auto;border-radius:2px}
.${P} figcaption{color:#606770;margin-top:2px}
`;

function addStyle() {
  if (typeof document === "undefined" || document.getElementById(`${P}-style`)) return;
  const style = document.createElement("style");
  style.id = `${P}-style`;
  style.textContent = CSS;
  document.head.append(style);
}

// h("div", { className, text, ...attributes }, ...children): an element; text only as text
function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

let lastId = 0;
const newId = (what) => `${P}-${++lastId}-${what}`;
const capitalised = (word) => String(word || "").charAt(0).toUpperCase() + String(word || "").slice(1);
const isEmpty = (value) => !value || (typeof value === "object" && !Object.keys(value).length);

// The tag input of "Filter by Classes": type, pick a class from the list, get a chip.
function tagInput(classes, inputId, listen) {
  const tags = [];
  let matches = [], active = 0;
  const listId = newId("options");
  const input = h("input", { id: inputId, type: "text", placeholder: "add new class...",
    autocomplete: "off", role: "combobox", "aria-autocomplete": "list", "aria-expanded": "false",
    "aria-controls": listId });
  const list = h("ul", { id: listId, className: `${P}-options`, role: "listbox", hidden: true });
  const chips = h("span", { className: `${P}-chips`, style: "display:contents" });
  const box = h("div", { className: `${P}-tags` }, chips, input, list);

  function drawChips() {
    chips.replaceChildren(...tags.map((name, i) => h("span", { className: `${P}-tag` }, name,
      h("button", { type: "button", "aria-label": `remove ${name}`, "data-tag": i, text: "×" }))));
  }
  function close() {
    matches = [];
    list.hidden = true;
    list.replaceChildren();
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }
  function drawOptions() {
    const query = input.value.trim().toLowerCase();
    if (!query) return close();
    const ranked = [];
    for (const name of classes) {
      const lower = String(name).toLowerCase(), at = lower.indexOf(query);
      if (at < 0 || tags.includes(name)) continue;
      ranked.push([lower === query ? 0 : at === 0 ? 1 : 2, name, at]);
    }
    ranked.sort((a, b) => a[0] - b[0]); // stable: the classes' own order within a rank
    matches = ranked.slice(0, MAX_OPTIONS);
    active = Math.min(active, Math.max(matches.length - 1, 0));
    if (!matches.length) return close();
    list.replaceChildren(...matches.map(([, name, at], i) => {
      const text = String(name);
      return h("li", { id: `${listId}-${i}`, role: "option", "data-option": i,
        "aria-selected": String(i === active) }, text.slice(0, at),
      h("mark", { text: text.slice(at, at + query.length) }), text.slice(at + query.length));
    }));
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    input.setAttribute("aria-activedescendant", `${listId}-${active}`);
  }
  function highlight(i) {
    active = (i + matches.length) % matches.length;
    list.querySelectorAll("li").forEach((li, k) => li.setAttribute("aria-selected", String(k === active)));
    input.setAttribute("aria-activedescendant", `${listId}-${active}`);
    const item = list.children[active];
    if (item && item.scrollIntoView) item.scrollIntoView({ block: "nearest" });
  }
  function add(name) {
    if (!tags.includes(name)) tags.push(name);
    input.value = "";
    close();
    drawChips();
    input.focus();
  }

  listen(input, "input", () => { active = 0; drawOptions(); });
  listen(input, "focus", drawOptions);
  listen(input, "blur", close);
  listen(input, "keydown", (event) => {
    const open = !list.hidden && matches.length;
    if (event.key === "ArrowDown" && open) highlight(active + 1);
    else if (event.key === "ArrowUp" && open) highlight(active - 1);
    else if (event.key === "Enter" && open) add(matches[active][1]);
    else if (event.key === "Escape" && open) close();
    else if (event.key === "Backspace" && input.value === "" && tags.length) {
      tags.pop();
      drawChips();
      return;
    } else return;
    event.preventDefault();
  });
  listen(list, "mousedown", (event) => event.preventDefault()); // keep the input's focus
  listen(list, "click", (event) => {
    const item = event.target.closest("li[data-option]");
    if (item && matches[item.dataset.option]) add(matches[item.dataset.option][1]);
  });
  listen(box, "click", (event) => {
    const remove = event.target.closest("button[data-tag]");
    if (remove) {
      tags.splice(Number(remove.dataset.tag), 1);
      drawChips();
      input.focus();
    } else if (event.target === box || event.target === chips) input.focus();
  });
  return { node: box, values: () => tags.slice() };
}

// One control per argument of the chosen method, named after the argument.
function argumentControls(spec) {
  const controls = [];
  for (const [name, arg] of Object.entries(spec || {})) {
    const { value, limit, type } = arg || {};
    let control;
    if (type === "enum") {
      control = h("select", { name }, (Array.isArray(limit) ? limit : []).map((choice) =>
        h("option", { value: choice, selected: String(choice) === String(value), text: choice })));
    } else if (type === "number") {
      const [low, high] = Array.isArray(limit) ? limit : [];
      control = h("input", { type: "number", name, min: low ?? null, max: high ?? null,
        step: Number.isInteger(Number(value)) ? 1 : "any" });
      control.value = value ?? "";
    } else {
      control = h("input", { type: "text", name });
      control.value = value ?? "";
    }
    control.dataset.kind = type === "number" ? "number" : "string";
    controls.push(h("label", null, h("span", { text: name }), control));
  }
  return controls;
}

function argumentValues(container) {
  const values = {};
  for (const control of container.querySelectorAll("[name]")) {
    const raw = control.value.trim();
    values[control.name] = control.dataset.kind === "number" && raw !== "" &&
      Number.isFinite(Number(raw)) ? Number(raw) : control.value;
  }
  return values;
}

// A feature's panel: a photo and its attribution map (other types: their data as text).
function featurePanel(feature) {
  const { name, base, modified, type } = feature;
  const column = h("div", { className: `${P}-col ${P}-col-feature` },
    h("div", { className: `${P}-col-title`, text: `${name} (${capitalised(type)})` }));
  if (typeof base === "string" && typeof modified === "string") {
    column.append(h("div", { className: `${P}-figures` },
      h("figure", null, h("img", { alt: "original", src: base }), h("figcaption", { text: "Original" })),
      h("figure", null, h("img", { alt: "attribution", src: modified }),
        h("figcaption", { text: "Attribution Magnitude" }))));
  } else {
    column.append(h("div", { text: base === undefined ? "" : JSON.stringify(base) }));
  }
  return column;
}

function rowCard(row, index, texts) {
  const features = Array.isArray(row.feature_outputs) ? row.feature_outputs : [];
  const title = (text) => h("div", { className: `${P}-col-title`, text });
  const predicted = (Array.isArray(row.predicted) ? row.predicted : []).map((cls) => {
    const active = cls.index === row.active_index;
    return h("button", { type: "button", className: `${P}-class${active ? " active" : ""}`,
      "aria-pressed": String(active), "data-label": cls.index,
      text: `${cls.label} (${Number(cls.score).toFixed(3)})` });
  });
  const contributions = features.map((feature) => {
    const share = Math.abs(Number(feature.contribution) || 0);
    const bar = h("div", { className: `${P}-bar` });
    bar.style.width = `${Math.min(share, 1) * 100}%`;
    return h("div", { className: `${P}-contribution` }, h("div", { text: feature.name }),
      h("div", { className: `${P}-track` }, h("div", { className: `${P}-bar-box` }, bar),
        h("span", { text: `${Math.round(share * 100)}%` })));
  });
  return h("div", { className: `${P}-row`, "data-row": index },
    h("div", { className: `${P}-col ${P}-col-predicted` }, title("Predicted"), predicted),
    h("div", { className: `${P}-col ${P}-col-label` }, title("Label"),
      h("div", { text: row.actual && row.actual.label != null ? row.actual.label : "—" })),
    h("div", { className: `${P}-col ${P}-col-contribution` }, title("Contribution"), contributions),
    features.map(featurePanel),
    h("div", { className: `${P}-note`, text: texts.loading, hidden: true }));
}

// The page. send("fetch", settings) and send("attribute", details) go to whoever computes.
export function mount(el, { config, language, send }) {
  addStyle();
  config = config || {};
  const texts = textsFor(language), unlisten = [];
  const listen = (target, event, handler) => {
    target.addEventListener(event, handler);
    unlisten.push(() => target.removeEventListener(event, handler));
  };
  const methods = Array.isArray(config.methods) ? config.methods : [];
  const methodArguments = config.method_arguments || {};
  let rows = [];

  const status = h("div", { className: `${P}-status`, role: "status", "data-state": "idle",
    "aria-live": "polite" });
  const classesId = newId("classes"), predictionId = newId("prediction"), methodId = newId("method");
  const tags = tagInput(Array.isArray(config.classes) ? config.classes : [], classesId, listen);
  const prediction = h("select", { id: predictionId, name: "prediction" },
    [["All", "all"], ["Correct", "correct"], ["Incorrect", "incorrect"]].map(([text, value]) =>
      h("option", { value, text })));
  const start = methods.includes(config.selected_method) ? config.selected_method : methods[0];
  const method = h("select", { id: methodId, name: "selected_method" },
    methods.map((m) => h("option", { value: m, selected: m === start, text: m })));
  const args = h("div", { className: `${P}-args` });
  const fetchButton = h("button", { type: "button", className: `${P}-fetch`, text: "Fetch" });
  const section = (extra, ...children) =>
    h("div", { className: `${P}-filter${extra ? ` ${P}-filter-${extra}` : ""}` }, ...children);
  const label = (forId, text) => h("label", { className: `${P}-filter-title`, for: forId, text });
  const loading = h("div", { className: `${P}-loading`, hidden: true },
    h("span", { className: `${P}-spinner`, "aria-hidden": "true" }), h("span", { text: texts.loading }));
  const list = h("div", { className: `${P}-rows` });
  const results = h("div", { className: `${P}-results` },
    h("h3", { className: `${P}-results-title`, text: "Instance Attribution" }), loading, list);
  const root = h("div", { className: P }, status,
    h("div", { className: `${P}-header`, text: "Captum Insights" }),
    h("div", { className: `${P}-filters` },
      section("classes", label(classesId, "Filter by Classes"), tags.node),
      section(null, label(predictionId, "Prediction"), prediction),
      section(null, label(methodId, "Attribution Method"), method),
      section("arguments", h("span", { className: `${P}-filter-title`,
        text: "Attribution Method Arguments" }), args),
      section("end", fetchButton)),
    results);
  el.append(root);

  function drawArguments() {
    const controls = argumentControls(methodArguments[method.value]);
    args.replaceChildren(...(controls.length ? controls : [h("span", { text: texts.noArguments })]));
  }
  function setLoading(on) {
    loading.hidden = !on;
    list.hidden = on;
    results.setAttribute("aria-busy", String(on));
  }
  function setPending(card, on) {
    card.classList.toggle(`${P}-pending`, on);
    card.querySelector(`.${P}-note`).hidden = !on;
    if (on) card.setAttribute("aria-busy", "true");
    else card.removeAttribute("aria-busy");
  }
  const cards = () => Array.from(list.querySelectorAll(`:scope > .${P}-row`));
  const settle = () => cards().forEach((card) => setPending(card, false));

  listen(method, "change", drawArguments);
  listen(fetchButton, "click", () => {
    setLoading(true);
    send("fetch", { attribution_method: method.value, arguments: argumentValues(args),
      prediction: prediction.value, classes: tags.values() });
  });
  listen(list, "click", (event) => {
    const button = event.target.closest(`button.${P}-class`);
    const card = button && button.closest(`.${P}-row`);
    if (!card || button.classList.contains("active")) return;
    const index = Number(card.dataset.row), row = rows[index];
    if (!row) return;
    settle(); // a newer click replaces an older one
    setPending(card, true);
    send("attribute", { inputIndex: index, modelIndex: row.model_index,
      labelIndex: Number(button.dataset.label) });
  });
  drawArguments();

  const ui = {
    rows(newRows) {
      rows = Array.isArray(newRows) ? newRows.slice() : [];
      setLoading(false);
      list.replaceChildren(...(rows.length ? rows.map((row, i) => rowCard(row, i, texts))
        : [h("div", { className: `${P}-none`, text: texts.noRows })]));
    },
    row(index, row) {
      const old = cards()[index];
      if (!old || isEmpty(row)) return;
      rows[index] = row;
      old.replaceWith(rowCard(row, index, texts));
    },
    status(s) {
      const { state = "idle", text = "" } = s || {};
      status.dataset.state = state;
      status.setAttribute("role", state === "error" || state === "lost" ? "alert" : "status");
      status.textContent = text;
      if (["error", "stopped", "empty", "lost"].includes(state)) {
        setLoading(false);
        settle();
      }
    },
    destroy() {
      unlisten.splice(0).forEach((off) => off());
      root.remove();
    },
  };
  return ui;
}

// The notebook's widget (anywidget): the kernel computes, over the widget's traits.
function render({ model, el }) {
  const language = model.get("language"), texts = textsFor(language), handlers = [];
  let lastBeat = Date.now(), sent = null, clicked = null, lost = false;
  const listen = (event, handler) => {
    model.on(event, handler);
    handlers.push([event, handler]);
  };
  const save = (key, value) => {
    model.set(key, value);
    model.save_changes();
    sent = Date.now();
  };
  const ui = mount(el, {
    config: model.get("insights_config"),
    language,
    send(kind, details) {
      if (kind === "fetch") save("config", details);
      else if (kind === "attribute") {
        clicked = details.inputIndex;
        save("label_details", details);
      }
    },
  });
  const showStatus = () => {
    lost = false;
    const s = model.get("status");
    if (!isEmpty(s)) ui.status(s);
  };
  listen("change:status", () => {
    sent = null;
    lastBeat = Date.now(); // a status from the kernel: it is there
    showStatus();
  });
  listen("change:output", () => ui.rows(model.get("output") || []));
  listen("change:attribution", () => {
    const row = model.get("attribution");
    if (!isEmpty(row) && clicked !== null) ui.row(clicked, row);
  });
  listen("msg:custom", (message) => {
    if (message && message.beat) lastBeat = Date.now();
  });
  const watch = setInterval(() => {
    const silent = Date.now() - lastBeat, beat = Number(model.get("heartbeat_s")) || 2;
    if (silent > 4000 * beat) {
      lost = true;
      sent = null; // a request sent before is not waited for any more
      ui.status({ state: "lost", text: texts.lost(Math.round(silent / 1000)) });
    } else if (lost) {
      showStatus();
    } else if (sent !== null && Date.now() - sent > WAITING_MS) {
      sent = null;
      ui.status({ state: "waiting", text: texts.waiting });
    }
  }, 1000);
  showStatus();
  return () => {
    clearInterval(watch);
    handlers.splice(0).forEach(([event, handler]) => model.off(event, handler));
    ui.destroy();
  };
}

export default { render };

// The command line's page: the same explorer behind a small JSON server at baseUrl.
export async function mountServer(el, baseUrl, language) {
  const texts = textsFor(language);
  let current = null; // the newest request's AbortController: an older answer is ignored
  let ui = null;

  function post(path, body, answered) {
    if (current) current.abort();
    const request = current = new AbortController();
    const mine = () => request === current && !request.signal.aborted;
    fetch(baseUrl + path, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: request.signal })
      .then(async (response) => {
        const json = await response.json().catch(() => undefined);
        if (!mine()) return;
        current = null;
        if (response.ok && json !== undefined) answered(json);
        else {
          ui.status({ state: response.status === 409 ? "stopped" : "error",
            text: (json && json.error) || texts.answered(response.status) });
        }
      }, () => {
        if (!mine()) return; // aborted by a newer request, or the page went away
        current = null;
        ui.status({ state: "error", text: texts.serverGone });
      });
  }

  function send(kind, details) {
    if (kind === "fetch") {
      ui.status({ state: "computing", text: texts.computing });
      post("fetch", details, (rows) => {
        ui.rows(rows);
        const n = Array.isArray(rows) ? rows.length : 0;
        ui.status(n ? { state: "done", text: texts.rows(n) } : { state: "empty", text: texts.empty });
      });
    } else if (kind === "attribute") {
      ui.status({ state: "computing", text: texts.explaining });
      post("attribute", details, (row) => {
        ui.row(details.inputIndex, row);
        ui.status({ state: "done", text: texts.explained });
      });
    }
  }

  let config = null, problem = null;
  try {
    const response = await fetch(baseUrl + "init");
    const json = await response.json().catch(() => undefined);
    if (response.ok && json) config = json;
    else problem = (json && json.error) || texts.answered(response.status);
  } catch (err) {
    problem = texts.serverGone;
  }
  ui = mount(el, { config: config || {}, language, send });
  if (problem) ui.status({ state: "error", text: problem });
  const destroy = ui.destroy;
  ui.destroy = () => {
    if (current) current.abort();
    current = null;
    destroy();
  };
  return ui;
}

// The website's copy: results computed when the site was built, at each method's defaults.
export function mountStatic(el, data) {
  data = data || {};
  const texts = textsFor(data.language), config = data.config || {};
  const photos = Array.isArray(data.photos) ? data.photos : [], maps = data.maps || {};
  let next = 0, shown = []; // the next photo to look at; the photo behind each row

  const same = (a, b) => {
    const x = String(a ?? "").trim(), y = String(b ?? "").trim();
    return x === y || (x !== "" && y !== "" && Number.isFinite(Number(x)) && Number(x) === Number(y));
  };
  function keep(photo, settings) {
    const top = (photo.predicted || [])[0];
    if (!top) return false;
    const classes = settings.classes || [];
    if (classes.length && !classes.includes(top.label)) return false;
    if (settings.prediction === "all" || !settings.prediction) return true;
    if (!photo.actual) return false;
    return (top.index === photo.actual.index) === (settings.prediction === "correct");
  }
  function row(p, k, method) {
    const photo = photos[p], map = maps[method], predicted = photo.predicted || [];
    const contribution = ((map.contributions || [])[p] || [])[k];
    return {
      feature_outputs: [{ name: data.feature || "Photo", base: photo.base, modified: ((map.images || [])[p] || [])[k],
        type: "image", contribution: contribution ?? 1 }],
      actual: photo.actual || null, predicted, active_index: predicted[k] && predicted[k].index,
      model_index: 0,
    };
  }
  function fetchRows(settings) {
    const method = settings.attribution_method, map = maps[method];
    if (!map) return ui.status({ state: "error", text: texts.staticMissing(method) });
    if (map.error) return ui.status({ state: "error", text: map.error });
    const defaults = (config.method_arguments || {})[method] || {}, used = map.arguments || {};
    for (const [name, value] of Object.entries(settings.arguments || {})) {
      const at = name in used ? used[name] : defaults[name] && defaults[name].value;
      if (!same(value, at)) return ui.status({ state: "error", text: texts.staticArguments });
    }
    const picked = [];
    for (let k = 0; k < photos.length && picked.length < STATIC_ROWS; k++) {
      const p = (next + k) % photos.length;
      if (keep(photos[p], settings)) picked.push(p);
    }
    if (!picked.length) return ui.status({ state: "empty", text: texts.empty });
    next = (picked[picked.length - 1] + 1) % photos.length;
    shown = picked.map((p) => ({ p, method }));
    ui.rows(picked.map((p) => row(p, 0, method)));
    ui.status({ state: "done", text: texts.staticDone(method, picked.length) });
  }
  function attribute({ inputIndex, labelIndex }) {
    const at = shown[inputIndex];
    const k = at ? (photos[at.p].predicted || []).findIndex((c) => c.index === labelIndex) : -1;
    if (k < 0) return ui.status({ state: "error", text: texts.staticRow });
    ui.row(inputIndex, row(at.p, k, at.method));
    ui.status({ state: "done", text: texts.explained });
  }

  const ui = mount(el, {
    config, language: data.language,
    send: (kind, details) => (kind === "fetch" ? fetchRows(details) : attribute(details)),
  });
  ui.status({ state: "idle", text: data.note || "" });
  return ui;
}
