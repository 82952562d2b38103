// Palisade console: the only script. Pages work without it; it adds live refresh.
"use strict";
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", function () {
  var box = document.querySelector("input[data-live]");
  if (!box) return;
  var key = "palisade-live:" + location.pathname;
  box.checked = sessionStorage.getItem(key) === "1";
  var timer = null;
  function arm() {
    if (timer) clearTimeout(timer);
    timer = box.checked ? setTimeout(function () { location.reload(); }, Number(box.dataset.live) * 1000) : null;
  }
  box.addEventListener("change", function () { sessionStorage.setItem(key, box.checked ? "1" : "0"); arm(); });
  arm();
});
