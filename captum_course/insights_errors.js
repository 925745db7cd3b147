// Injected into Captum Insights' page by captum_course/insights.py. The page spins forever
// when a request fails (for example a Fetch over the work budget): show the server's message
// above it instead, and an empty result for a failed Fetch.
(function () {
  var realFetch = window.fetch.bind(window), box = document.createElement("div");
  box.setAttribute("role", "alert");
  box.hidden = true;
  box.style.cssText = "padding:8px 12px;margin:8px;border:1px solid #c66;background:#fee;font:14px sans-serif";
  function say(text) {
    if (!box.parentNode) document.body.prepend(box);
    box.textContent = text;
    box.hidden = !text;
  }
  window.fetch = function (url, options) {
    if (url !== "fetch" && url !== "attribute") return realFetch(url, options);
    return realFetch(url, options).then(function (response) {
      if (response.ok) return response.clone().json().then(function (rows) {
        say(url === "fetch" && !rows.length ? "No example matches these filters." : "");
        return response;
      });
      return response.json().catch(function () { return {}; }).then(function (body) {
        say(body.error || "The Insights server answered " + response.status);
        return url === "fetch" ? new Response("[]") : new Promise(function () {});
      });
    }, function () {
      say("The Insights server is not reachable: was it stopped?");
      return new Promise(function () {});
    });
  };
})();
