// Progressive enhancement only: every flow works without this file.
(function () {
  "use strict";
  var MAX_PASSENGERS = 6;

  function setupPassengers(form) {
    var rows = form.querySelector(".passenger-rows");
    var add = form.querySelector("[data-add-passenger]");
    if (!rows || !add) return;
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
        row.querySelector("[data-remove-passenger]").hidden = all.length === 1;
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
      button.closest(".passenger-row").remove();
      refresh();
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

  function enhance(root) {
    root.querySelectorAll("form[data-passengers]").forEach(setupPassengers);
    root.querySelectorAll("form[data-pay-form]").forEach(setupPayForm);
  }

  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-dismiss]");
    if (close) close.closest(".flash").remove();
    if (event.target.closest("[data-print]")) window.print();
  });
  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:load", function (event) { enhance(event.target); });
})();
