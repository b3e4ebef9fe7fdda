// ArgoBox console: progressive enhancement only. Every page works without this file; with it, the Pending list
// refreshes itself, a request page notices a decision taken elsewhere, times show in local time, and a decision
// button cannot be pressed twice. Nothing here builds markup from data: refreshed lists are the server's own
// escaped HTML, parsed inertly, and everything else is set as text.
"use strict";

(function () {
  var PENDING_EVERY_MS = 1000;
  var STATUS_EVERY_MS = 2000;

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        el.title = el.textContent;
        el.textContent = when.toLocaleString();
      }
    });
  }

  function sessionEnded(target) {
    var note = document.createElement("p");
    note.className = "flash flash-error";
    note.setAttribute("role", "alert");
    note.textContent = "Your session ended. Sign in again to see new requests.";
    target.replaceChildren(note);
  }

  // Pending: fetch the list fragment every second while the page is visible; replace it only when it changed.
  function livePending(section) {
    var src = section.getAttribute("data-live-src");
    var last = null;
    var timer = null;
    var hint = document.querySelector("[data-live-hint]");
    if (hint) hint.hidden = false;

    function schedule() {
      clearTimeout(timer);
      if (!document.hidden) timer = setTimeout(poll, PENDING_EVERY_MS);
    }

    function poll() {
      fetch(src, { credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 401) { sessionEnded(section); return null; }
          return response.ok ? response.text() : "";
        })
        .then(function (text) {
          if (text === null) return;
          if (text && text !== last) {
            var doc = new DOMParser().parseFromString(text, "text/html");
            section.replaceChildren.apply(section, Array.from(doc.body.childNodes).map(function (node) {
              return document.adoptNode(node);
            }));
            localTimes(section);
            last = text;
          }
          schedule();
        })
        .catch(schedule);
    }

    document.addEventListener("visibilitychange", function () { if (!document.hidden) poll(); });
    poll();
  }

  // A request page: if the request is decided or expires while the page is open, say so.
  function watchStatus(badge) {
    var shown = badge.getAttribute("data-status");
    if (shown !== "pending_approval") return;
    var note = document.getElementById("stale-note");
    var timer = setInterval(function () {
      fetch(badge.getAttribute("data-status-src"), { credentials: "same-origin", cache: "no-store" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data || data.status === shown) return;
          clearInterval(timer);
          note.textContent = "Meanwhile this request changed: " + data.words +
            (data.decided_by ? " (decided by " + data.decided_by + ")" : "") + ". Reload the page to see it.";
          note.hidden = false;
        })
        .catch(function () {});
    }, STATUS_EVERY_MS);
  }

  function oneSubmitEach() {
    document.querySelectorAll("form[data-decision]").forEach(function (form) {
      form.addEventListener("submit", function () {
        form.querySelectorAll("button[type=submit]").forEach(function (button) {
          setTimeout(function () { button.disabled = true; button.setAttribute("aria-busy", "true"); }, 0);
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    var section = document.getElementById("pending-list");
    if (section) livePending(section);
    var badge = document.getElementById("status");
    if (badge) watchStatus(badge);
    oneSubmitEach();
  });
})();
