// Usher — conveniences on top of pages that work without JavaScript:
// - forms marked data-confirm="…" ask before submitting (disable, delete);
// - the people list refreshes its results as filters change and as the search is typed;
// - the people list's selection: "select this page", the count selected, the mass-action
//   button enabled only with someone to act on;
// - a running job's page follows its progress;
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
          updateSelection();
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

  // ------------------------------------------------------------------ selection, mass actions
  // Delegated too: the live search replaces the rows and the bar.
  function rowBoxes() {
    return document.querySelectorAll("input[type=checkbox][name=usernames][form=bulk-form]");
  }

  function updateSelection() {
    var form = document.getElementById("bulk-form");
    if (!form) return;
    var boxes = rowBoxes();
    var selected = 0;
    Array.prototype.forEach.call(boxes, function (box) {
      if (box.checked) selected++;
      var row = box.closest("tr");
      if (row) row.classList.toggle("is-selected", box.checked);
    });
    var all = document.getElementById("select-page");
    if (all) {
      all.checked = boxes.length > 0 && selected === boxes.length;
      all.indeterminate = selected > 0 && selected < boxes.length;
    }
    var count = document.getElementById("bulk-selected-count");
    if (count) count.textContent = selected === 0 ? "none yet" : selected + " selected";
    var scope = form.querySelector("input[name=scope]:checked");
    var submit = form.querySelector("button[type=submit]");
    if (submit) submit.disabled = (!scope || scope.value === "selected") && selected === 0;
  }

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (!(el instanceof HTMLInputElement)) return;
    if (el.id === "select-page") {
      Array.prototype.forEach.call(rowBoxes(), function (box) {
        box.checked = el.checked;
      });
    } else if (el.name === "usernames" && el.getAttribute("form") === "bulk-form") {
      // Ticking someone means acting on the ticked people.
      var selectedScope = document.querySelector("#bulk-form input[name=scope][value=selected]");
      if (el.checked && selectedScope) selectedScope.checked = true;
    } else if (!(el.name === "scope" && el.form && el.form.id === "bulk-form")) {
      return;
    }
    updateSelection();
  });

  // ------------------------------------------------------------------ job progress
  function followJob(card) {
    var id = card.getAttribute("data-job-id");
    var progress = document.getElementById("job-progress");
    var status = document.getElementById("job-status");
    var failures = 0;

    function poll() {
      fetch("/api/v1/jobs/" + encodeURIComponent(id), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (job) {
          failures = 0;
          if (job.state !== "queued" && job.state !== "running") {
            // Finished: the server renders the result.
            window.location.reload();
            return;
          }
          if (progress) {
            progress.max = Math.max(job.total, 1);
            progress.value = Math.min(job.processed, job.total);
          }
          if (status && job.state === "running") {
            status.textContent =
              (card.getAttribute("data-doing") || "") + " " +
              job.processed.toLocaleString("en-US") + " of " +
              (card.getAttribute("data-of") || job.total) + "…";
          }
          setTimeout(poll, 1000);
        })
        .catch(function () {
          // A hiccup: try again a little later; after a few, the page reloads by itself.
          failures++;
          if (failures > 5) {
            window.location.reload();
          } else {
            setTimeout(poll, 2000);
          }
        });
    }
    setTimeout(poll, 1000);
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

  // ------------------------------------------------------------------ import progress
  // The import page reloads itself without JavaScript; with it, the bar moves in place from
  // GET /api/v1/imports/{id}, and the page reloads once to show the summary.
  function followImport(panel) {
    var id = panel.getAttribute("data-import-job");
    var bar = panel.querySelector("[data-import-bar]");
    var field = function (name) {
      return panel.querySelector('[data-import-field="' + name + '"]');
    };
    var labels = { queued: "Queued", running: "Running", done: "Done", failed: "Failed" };
    var samples = [];

    function show(job) {
      var rows = job.rows || 0;
      var percent = rows ? Math.min(100, Math.floor((job.processed * 100) / rows)) : 100;
      if (bar) {
        bar.max = rows || 1;
        bar.value = job.processed;
        bar.textContent = percent + "%";
      }
      var processed = field("processed");
      if (processed) processed.textContent = job.processed;
      var pct = field("percent");
      if (pct) pct.textContent = percent;
      var state = field("state_label");
      if (state) state.textContent = labels[job.state] || job.state;
      // Rate over the last few polls, so that the estimate follows the current pace.
      var now = Date.now();
      samples.push([now, job.processed]);
      if (samples.length > 10) samples.shift();
      var rate = field("rate");
      if (rate && samples.length > 1) {
        var first = samples[0];
        var perSecond = ((job.processed - first[1]) * 1000) / Math.max(1, now - first[0]);
        if (perSecond > 0) {
          var left = Math.round((rows - job.processed) / perSecond);
          var eta = left < 60 ? left + " s" : Math.floor(left / 60) + " min " + (left % 60) + " s";
          rate.textContent = " · " + Math.round(perSecond) + " rows/s · about " + eta + " left";
        }
      }
    }

    function poll() {
      fetch("/api/v1/imports/" + encodeURIComponent(id), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (job) {
          show(job);
          if (job.state === "done" || job.state === "failed") {
            window.location.reload();
          } else {
            setTimeout(poll, 1000);
          }
        })
        .catch(function () {
          // A network hiccup or an ended session: fall back to reloading the page.
          setTimeout(function () {
            window.location.reload();
          }, 3000);
        });
    }
    poll();
  }

  ready(function () {
    var live = document.querySelector("form[data-live]");
    if (live) liveFilters(live);
    var create = document.querySelector("form[data-suggest-username]");
    if (create) suggestUsername(create);
    updateSelection();
    var job = document.querySelector("#job[data-job-id]");
    var state = job && job.getAttribute("data-state");
    if (state === "queued" || state === "running") followJob(job);
    var importPanel = document.querySelector("[data-import-job]");
    var importState = importPanel && importPanel.getAttribute("data-import-state");
    if (importState === "queued" || importState === "running") followImport(importPanel);
  });
})();
