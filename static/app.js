// Progressive enhancement only: every flow works without this file.
(function () {
  "use strict";
  var MAX_PASSENGERS = 6;
  document.documentElement.classList.add("js");

  function setupPassengers(form) {
    var rows = form.querySelector(".passenger-rows");
    var add = form.querySelector("[data-add-passenger]");
    // DOMContentLoaded and htmx:load both reach a form: wire it once.
    if (!rows || !add || form.dataset.enhanced) return;
    form.dataset.enhanced = "1";
    add.hidden = false;
    function refresh() {
      var all = rows.querySelectorAll(".passenger-row");
      all.forEach(function (row, i) {
        var input = row.querySelector("input");
        var label = row.querySelector("label");
        var id = input.id.replace(/-\d+$/, "-" + (i + 1));
        input.id = id;
        label.htmlFor = id;
        label.textContent = "Passenger " + (i + 1) + " name";
        var remove = row.querySelector("[data-remove-passenger]");
        remove.hidden = all.length === 1;
        remove.setAttribute("aria-label", "Remove passenger " + (i + 1));
      });
      add.hidden = all.length >= MAX_PASSENGERS;
    }
    add.addEventListener("click", function () {
      var first = rows.querySelector(".passenger-row");
      var copy = first.cloneNode(true);
      var input = copy.querySelector("input");
      input.value = "";
      input.removeAttribute("aria-invalid");
      rows.appendChild(copy);
      refresh();
      input.focus();
    });
    rows.addEventListener("click", function (event) {
      var button = event.target.closest("[data-remove-passenger]");
      if (!button) return;
      var row = button.closest(".passenger-row");
      var next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      refresh();
      if (next) next.querySelector("input").focus();
    });
    refresh();
  }

  function setupPayForm(form) {
    if (form.dataset.enhanced) return;
    form.dataset.enhanced = "1";
    var groups = form.querySelectorAll("[data-method-fields]");
    function show() {
      var checked = form.querySelector("[data-method-choice]:checked");
      var method = checked ? checked.value : "credit_card";
      groups.forEach(function (group) {
        var on = group.dataset.methodFields.split(" ").indexOf(method) !== -1;
        group.hidden = !on;
        group.disabled = !on;
      });
    }
    form.addEventListener("change", function (event) {
      if (event.target.matches("[data-method-choice]")) show();
    });
    show();
  }

  // Tell assistive technology about each new payment state (not each poll), and move
  // focus to the result once the attempt is final: the Pay button it was on is gone.
  var lastState = {};
  function spoken(element) {
    var copy = element.cloneNode(true);
    copy.querySelectorAll("[aria-hidden='true']").forEach(function (n) { n.remove(); });
    return copy.textContent.replace(/\s+/g, " ").trim();
  }
  // Once an attempt on the pay page succeeds, the page stops saying "Pay for your trip"
  // and drops the test cards: what it shows is a paid trip.
  var PAID = ["success", "partially_refunded", "refunded"];
  function markPaid(panel) {
    var layout = panel.closest(".pay-layout");
    if (!layout || PAID.indexOf(panel.dataset.state) === -1) return;
    var heading = layout.querySelector("[data-paid-heading]");
    if (heading) heading.textContent = heading.dataset.paidHeading;
    layout.querySelectorAll("[data-hide-when-paid]").forEach(function (n) { n.hidden = true; });
    if (document.title.indexOf("Pay for ") === 0) document.title = document.title.replace("Pay for ", "Paid: ");
  }
  function announceStatus(panel, live) {
    markPaid(panel);
    var state = panel.dataset.state;
    if (!state || lastState[panel.id] === state) return;
    lastState[panel.id] = state;
    if (!live) return; // a page load: the reader reads the page itself
    var heading = panel.querySelector("[data-status-heading]");
    var summary = panel.querySelector("[data-status-summary]");
    var announcer = document.getElementById("announcer");
    if (announcer && heading) {
      announcer.textContent = [heading, summary].filter(Boolean).map(spoken).join(". ").replace(/\.\. /g, ". ");
    }
    if (heading && state !== "pending") heading.focus();
  }

  function enhance(root, live) {
    root.querySelectorAll("form[data-passengers]").forEach(setupPassengers);
    // The pay form may itself be what htmx swapped in (a plan chosen): wire it too.
    if (root.matches && root.matches("form[data-pay-form]")) setupPayForm(root);
    root.querySelectorAll("form[data-pay-form]").forEach(setupPayForm);
    root.querySelectorAll("[data-dismiss], [data-print]").forEach(function (button) {
      button.hidden = false;
    });
    var panels = root.matches && root.matches(".payment-status") ? [root] : [];
    root.querySelectorAll(".payment-status").forEach(function (panel) {
      panels.push(panel);
    });
    panels.forEach(function (panel) { announceStatus(panel, live); });
  }

  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-dismiss]");
    if (close) close.closest(".flash").remove();
    if (event.target.closest("[data-print]")) window.print();
  });
  // A visible spinner on the Pay button while the request is on its way.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var button = event.target.querySelector && event.target.querySelector("[data-pay-button]");
    if (button) button.setAttribute("aria-busy", "true");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var button = event.target.querySelector && event.target.querySelector("[data-pay-button]");
    if (button) button.removeAttribute("aria-busy");
  });

  // "Held until 14:35 IST" gains a live countdown: the server renders the deadline as
  // <time datetime="…" data-countdown>; without JavaScript the time alone is shown.
  function formatLeft(ms) {
    var total = Math.max(0, Math.floor(ms / 1000));
    var minutes = Math.floor(total / 60);
    var seconds = total % 60;
    return minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
  }
  function tickCountdowns() {
    document.querySelectorAll("[data-countdown]").forEach(function (element) {
      var output = element.parentNode.querySelector("[data-countdown-left]");
      var deadline = Date.parse(element.getAttribute("datetime"));
      if (!output || isNaN(deadline)) return;
      var left = deadline - Date.now();
      output.hidden = false;
      output.textContent = left > 0 ? "(" + formatLeft(left) + " left)" : "(the hold has ended)";
    });
  }
  window.setInterval(tickCountdowns, 1000);

  // Live status: a card that can still change listens to the server's event stream
  // (htmx SSE extension). Where the stream cannot be opened (a proxy that buffers, an
  // error), a pending card polls its status URL once a second instead, as before.
  var streamFailed = false;
  var SSE_ATTRIBUTES = ["hx-ext", "sse-connect", "sse-swap", "sse-close"];
  function pollInstead(panel) {
    SSE_ATTRIBUTES.forEach(function (name) { panel.removeAttribute(name); });
    if (panel.dataset.pollUrl) {
      panel.setAttribute("hx-get", panel.dataset.pollUrl);
      panel.setAttribute("hx-trigger", "every 1s");
    }
  }
  document.addEventListener("htmx:sseError", function (event) {
    var panel = event.target;
    if (!panel.matches || !panel.matches(".payment-status")) return;
    streamFailed = true;
    if (event.detail && event.detail.source) event.detail.source.close();
    pollInstead(panel);
    htmx.process(panel);
  });
  // Cards that arrive later (each poll brings one) poll too once the stream has failed.
  document.addEventListener("htmx:beforeProcessNode", function (event) {
    var node = event.target;
    if (streamFailed && node.matches && node.matches(".payment-status[sse-connect]")) {
      pollInstead(node);
    }
  });
  // A stream lives RAILSERVE_STREAM_MAX_AGE seconds and ends with `reconnect` (never
  // `close`): open it again on a fresh copy of the card; its first event is the card now.
  document.addEventListener("htmx:sseOpen", function (event) {
    var panel = event.target;
    var source = event.detail && event.detail.source;
    if (!source || !panel.matches || !panel.matches(".payment-status")) return;
    source.addEventListener("reconnect", function () {
      source.close();
      if (!document.body.contains(panel)) return;
      var fresh = panel.cloneNode(true);
      panel.replaceWith(fresh);
      htmx.process(fresh);
    });
  });
  // Every new connection first sends the current card: skip it when it is already shown.
  var SHOWN = /data-shown="([^"]*)"/;
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var match = SHOWN.exec((event.detail && event.detail.data) || "");
    if (match && event.target.dataset && event.target.dataset.shown === match[1]) {
      event.preventDefault();
    }
  });
  // After an htmx swap, focus goes somewhere on purpose, and what a person opened stays open.
  // Before the swap: which <details> in the target are open, and where focus was if the swap
  // is about to remove it. After: reopen them; move focus to the message that answers an
  // action ([data-focus]), else back to the same control (the toggled checkbox), else to the
  // new content's heading. A refresh that did not hold focus takes none.
  var swapMemory = null;
  function describe(element) {
    if (element.id) return "#" + CSS.escape(element.id);
    if (element.name) {
      var selector = element.tagName.toLowerCase() + "[name='" + CSS.escape(element.name) + "']";
      // A checkbox, radio or button is one of several of that name: its value tells which.
      return /^(checkbox|radio|submit|button)$/.test(element.type)
        ? selector + "[value='" + CSS.escape(element.value) + "']" : selector;
    }
    if (element.matches("summary") && element.parentElement.id) {
      return "#" + CSS.escape(element.parentElement.id) + " > summary";
    }
    if (element.matches("a[href]")) return "a[href='" + CSS.escape(element.getAttribute("href")) + "']";
    return null;
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target) return;
    var active = document.activeElement;
    var open = [];
    if (target.matches("details[id][open]")) open.push(target.id);
    target.querySelectorAll("details[id][open]").forEach(function (d) { open.push(d.id); });
    var held = active && active !== document.body && target.contains(active);
    swapMemory = {
      open: open,
      held: held,
      focus: held ? describe(active) : null,
      answer: !!(event.detail.requestConfig && event.detail.requestConfig.verb !== "get"),
    };
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var memory = swapMemory;
    swapMemory = null;
    if (!memory) return;
    memory.open.forEach(function (id) {
      var details = document.getElementById(id);
      if (details) details.open = true;
    });
    var root = event.target && event.target.querySelector && document.contains(event.target)
      ? event.target : document;
    var message = root.matches && root.matches("[data-focus]") ? root : root.querySelector("[data-focus]");
    if (message && (memory.answer || memory.held)) {
      message.focus();
      return;
    }
    var active = document.activeElement;
    if (!memory.held || (active && active !== document.body)) return;
    var again = memory.focus && document.querySelector(memory.focus);
    if (again) {
      again.focus();
      return;
    }
    var heading = root.querySelector("[data-status-heading], h1, h2, h3") ||
      (root !== document ? root : null);
    if (heading) {
      if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  });

  document.addEventListener("DOMContentLoaded", function () { enhance(document, false); });
  document.addEventListener("DOMContentLoaded", tickCountdowns);
  document.addEventListener("htmx:load", tickCountdowns);
  document.addEventListener("htmx:load", function (event) {
    enhance(event.target, event.target !== document.body);
  });
})();
