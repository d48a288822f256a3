// pitstop web UI: search as you type, and fragments loaded after the page.
// Everything works without this script; it only saves round trips and key presses.
(function () {
  "use strict";

  // --- search as you type ---------------------------------------------------------------------
  var input = document.getElementById("q");
  var popup = document.getElementById("search-popup");
  if (input && popup) {
    var timer = null, pending = null, last = "";

    function close() {
      popup.hidden = true;
      popup.innerHTML = "";
      last = "";
    }

    function links() {
      return Array.prototype.slice.call(popup.querySelectorAll("a"));
    }

    function suggest() {
      var text = input.value.trim();
      if (!text) { close(); return; }
      if (text === last) { return; }
      last = text;
      if (pending) { pending.abort(); }
      pending = new AbortController();
      var url = input.getAttribute("data-suggest") + "?fragment=1&q=" + encodeURIComponent(text);
      fetch(url, { signal: pending.signal, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          if (input.value.trim() !== text) { return; }
          popup.innerHTML = html;  // rendered and escaped by the server's templates
          popup.hidden = false;
        })
        .catch(function (err) {
          if (err && err.name === "AbortError") { return; }
          if (err === 401) { window.location.reload(); }
        });
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(suggest, 90);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown" && !popup.hidden && links().length) {
        e.preventDefault();
        links()[0].focus();
      } else if (e.key === "Escape") {
        close();
      }
    });
    popup.addEventListener("keydown", function (e) {
      var all = links(), i = all.indexOf(document.activeElement);
      if (e.key === "ArrowDown" && i < all.length - 1) {
        e.preventDefault();
        all[i + 1].focus();
      } else if (e.key === "ArrowUp") {
        e.preventDefault();
        if (i > 0) { all[i - 1].focus(); } else { input.focus(); }
      } else if (e.key === "Escape") {
        input.focus();
        close();
      }
    });
    document.addEventListener("click", function (e) {
      if (!popup.contains(e.target) && e.target !== input) { popup.hidden = true; }
    });
    input.addEventListener("focus", function () {
      if (popup.innerHTML) { popup.hidden = false; }
    });
  }

  // --- lineage: a tall graph opens scrolled to the object of the page -------------------------
  Array.prototype.forEach.call(document.querySelectorAll(".graph"), function (box) {
    var root = box.querySelector(".root rect"), svg = box.querySelector("svg");
    if (!root || !svg || box.scrollHeight <= box.clientHeight) { return; }
    var scale = svg.getBoundingClientRect().height / svg.viewBox.baseVal.height;
    var middle = (root.y.baseVal.value + root.height.baseVal.value / 2) * scale;
    box.scrollTop = Math.max(0, middle - box.clientHeight / 2);
  });

  // --- fragments: parts of a page loaded after it (sample rows) --------------------------------
  Array.prototype.forEach.call(document.querySelectorAll("[data-fragment]"), function (el) {
    fetch(el.getAttribute("data-fragment"), { credentials: "same-origin" })
      .then(function (r) {
        return r.text().then(function (text) { return { ok: r.ok, text: text }; });
      })
      .then(function (res) {
        if (res.ok) {
          el.innerHTML = res.text;  // rendered and escaped by the server's templates
        } else {
          var p = document.createElement("p");
          p.className = "error";
          p.textContent = res.text;
          el.innerHTML = "";
          el.appendChild(p);
        }
        el.setAttribute("data-loaded", "true");
      });
  });
})();
