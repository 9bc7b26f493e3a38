// Usher — conveniences on top of pages that work without JavaScript:
// - forms marked data-confirm="…" ask before submitting (disable, delete);
// - the people list refreshes its results as filters change and as the search is typed;
// - the creation form suggests a username from the names.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  // ------------------------------------------------------------------ confirmations
  // Delegated, so that it also covers rows the live search puts in place.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var message = form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  function ready(fn) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", fn);
    } else {
      fn();
    }
  }

  // ------------------------------------------------------------------ live filters
  function liveFilters(form) {
    var target = document.getElementById(form.getAttribute("data-live"));
    if (!target) return;
    var timer = null;
    var sequence = 0;
    var controller = null;

    // The form's address without empty or default values, as the server writes its links.
    function address() {
      var params = new URLSearchParams();
      Array.prototype.forEach.call(form.elements, function (el) {
        if (!el.name || el.disabled) return;
        var value = el.value;
        if (value.trim() === "") return;
        if (el instanceof HTMLSelectElement && el.options.length && value === el.options[0].value) return;
        params.append(el.name, value);
      });
      var query = params.toString();
      return form.getAttribute("action") + (query ? "?" + query : "");
    }

    function refresh() {
      clearTimeout(timer);
      var url = address();
      var mine = ++sequence;
      if (controller) controller.abort();
      controller = typeof AbortController === "function" ? new AbortController() : null;
      form.setAttribute("aria-busy", "true");
      fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
        signal: controller ? controller.signal : undefined,
      })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          if (mine !== sequence) return;
          var page = new DOMParser().parseFromString(html, "text/html");
          var fresh = page.getElementById(target.id);
          if (!fresh) throw new Error("no results in the answer");
          target.innerHTML = fresh.innerHTML;
          var status = document.getElementById("live-status");
          var count = target.querySelector(".count");
          if (status && count) status.textContent = count.textContent;
          history.replaceState(null, "", url);
          form.removeAttribute("aria-busy");
        })
        .catch(function (error) {
          if (error && error.name === "AbortError") return;
          // Whatever went wrong (a session that ended, a network error), the plain form works.
          form.submit();
        });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      refresh();
    });
    form.addEventListener("change", function (event) {
      if (event.target instanceof HTMLSelectElement) refresh();
    });
    var search = form.querySelector("input[type=search]");
    if (search) {
      var last = search.value;
      search.addEventListener("input", function () {
        if (search.value === last) return;
        last = search.value;
        clearTimeout(timer);
        timer = setTimeout(refresh, 300);
      });
    }
  }

  // ------------------------------------------------------------------ username suggestion
  function suggestUsername(form) {
    var first = form.elements.namedItem("first_name");
    var last = form.elements.namedItem("last_name");
    var username = form.elements.namedItem("username");
    var hint = document.getElementById("username-hint");
    if (!first || !last || !username || !hint) return;
    var defaultHint = hint.textContent;
    // Typed by hand: left alone. Empty, or filled by a suggestion: free to fill.
    var byHand = username.value !== "" && !username.hasAttribute("data-suggested");
    var timer = null;
    var sequence = 0;

    function showHint(text, state) {
      hint.textContent = text;
      hint.className = "hint" + (state ? " " + state : "");
    }

    username.addEventListener("input", function () {
      byHand = username.value !== "";
      username.removeAttribute("data-suggested");
      showHint(defaultHint, "");
    });

    function suggest() {
      if (byHand) return;
      var f = first.value.trim();
      var l = last.value.trim();
      if (f === "" && l === "") return;
      var mine = ++sequence;
      var params = new URLSearchParams({ first_name: f, last_name: l });
      fetch("/api/v1/users/suggest-username?" + params.toString(), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (data) {
          if (!data || mine !== sequence || byHand || !data.username) return;
          username.value = data.username;
          username.setAttribute("data-suggested", "");
          if (data.available) {
            showHint("Suggested from the names: “" + data.username + "” is available.", "ok");
          } else {
            showHint("“" + data.username + "” is taken: choose another username.", "bad");
          }
        })
        .catch(function () {
          /* No suggestion: the admin types one. */
        });
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(suggest, 250);
    }
    first.addEventListener("input", schedule);
    last.addEventListener("input", schedule);
  }

  ready(function () {
    var live = document.querySelector("form[data-live]");
    if (live) liveFilters(live);
    var create = document.querySelector("form[data-suggest-username]");
    if (create) suggestUsername(create);
  });
})();
