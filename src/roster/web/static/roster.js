// Roster's console works without this script; it only refreshes the Status box at the
// access-check interval and filters the alert recipients as you type.
(function () {
  "use strict";
  var box = document.querySelector("[data-refresh]");
  if (box) {
    var seconds = Math.max(5, parseInt(box.getAttribute("data-seconds"), 10) || 60);
    setInterval(function () {
      fetch(box.getAttribute("data-refresh"), { credentials: "same-origin" })
        .then(function (r) {
          if (r.redirected) { window.location.reload(); return null; } // signed out meanwhile
          return r.ok ? r.text() : null;
        })
        .then(function (html) { if (html !== null) { box.innerHTML = html; } })
        .catch(function () {});
    }, seconds * 1000);
  }
  var filter = document.querySelector("[data-filter]");
  if (filter) {
    filter.addEventListener("input", function () {
      var needle = filter.value.toLowerCase();
      document.querySelectorAll(filter.getAttribute("data-filter")).forEach(function (li) {
        li.hidden = needle && li.textContent.toLowerCase().indexOf(needle) < 0;
      });
    });
  }
  var only = document.getElementById("only_selected");
  var warning = document.getElementById("nobody-warning");
  if (only && warning) {
    var update = function () {
      var any = document.querySelector("#admin-list input:checked");
      warning.hidden = !(only.checked && !any);
    };
    document.addEventListener("change", update);
    update();
  }
})();
