// Behaviour every page shares, delegated from the document once (htmx swaps keep it).
// The Content-Security-Policy allows no inline script, no on*= attribute and no eval (so
// no htmx trigger filters): what those did is here, declared by data attributes.
(function () {
  "use strict";
  if (window.recaudoShared) return;
  window.recaudoShared = true;

  function fire(element, name) {
    element.dispatchEvent(new CustomEvent(name, {bubbles: false}));
  }

  document.addEventListener("change", function (event) {
    var field = event.target, form = field.form;
    // <select data-autosubmit>: choosing is submitting
    if (field.hasAttribute && field.hasAttribute("data-autosubmit") && form) {
      form.submit();
      return;
    }
    // <form data-fields-changed-except="q">: "fields-changed" on a change of any field
    // but the one named (it has its own trigger)
    if (form && form.hasAttribute("data-fields-changed-except")
        && field.id !== form.getAttribute("data-fields-changed-except")) {
      fire(form, "fields-changed");
    }
  });

  // <input data-search-min="3">: "search-typed" when emptied or at least that long
  document.addEventListener("keyup", function (event) {
    var field = event.target;
    if (!field.hasAttribute || !field.hasAttribute("data-search-min")) return;
    var length = field.value.trim().length;
    if (length === 0 || length >= Number(field.getAttribute("data-search-min"))) {
      fire(field, "search-typed");
    }
  });

  // <input data-select-on-focus>: the whole value selected, ready to copy
  document.addEventListener("focusin", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-select-on-focus")) {
      event.target.select();
    }
  });
})();
