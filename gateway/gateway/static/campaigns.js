// The campaign form: "Agregar condición" adds an empty condition row (without JavaScript the
// form already has a few). No inline handlers: the page's CSP allows only files like this one.
(function () {
  "use strict";
  function ready() {
    var button = document.getElementById("add-condition");
    var template = document.getElementById("condition-row-template");
    var rows = document.getElementById("condition-rows");
    if (!button || !template || !rows) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      rows.appendChild(template.content.cloneNode(true));
      var selects = rows.querySelectorAll("select[name=cond_field]");
      selects[selects.length - 1].focus();
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
}());
