// The activity form on the debtor's 360° view: the clock runs from the moment the form
// was rendered (its hidden started_at), the promise and callback fieldsets show only
// when the chosen result code asks for them, and the caller id only for an outbound
// call. Without this script all stay visible and the server still checks everything.
// Loaded again after each htmx swap of the tabs, so every form is set up once
// (data-ready). The verdict on the promise being typed comes from the server (htmx).
(function () {
  "use strict";
  const setUp = (form) => {
    if (form.dataset.ready) return;
    form.dataset.ready = "1";
    const clock = form.querySelector("#activity-clock");
    const since = clock ? Date.parse(clock.dataset.since) : NaN;
    if (clock && !Number.isNaN(since)) {
      const tick = () => {
        if (!document.body.contains(clock)) { clearInterval(timer); return; }
        const seconds = Math.max(0, Math.floor((Date.now() - since) / 1000));
        const minutes = Math.floor(seconds / 60);
        clock.textContent = minutes + ":" + String(seconds % 60).padStart(2, "0");
      };
      const timer = setInterval(tick, 1000);
      tick();
    }
    const select = form.querySelector("#result_code_id");
    const toggle = () => {
      const option = select && select.selectedOptions[0];
      const wants = {
        "needs-promise": option && option.dataset.needsPromise === "1",
        "schedules-callback": option && option.dataset.schedulesCallback === "1",
      };
      form.querySelectorAll("fieldset.conditional").forEach((fieldset) => {
        const invalid = fieldset.querySelector("[aria-invalid=true]");
        const hasValue = Array.from(fieldset.querySelectorAll("input")).some((i) => i.value);
        // a refused form keeps showing what it was told about (or typed)
        fieldset.hidden = !(wants[fieldset.dataset.when] || invalid ||
                            (fieldset.dataset.when === "schedules-callback" && hasValue));
      });
    };
    if (select) {
      select.addEventListener("change", toggle);
      toggle();
    }
    // the number the call goes out from matters only for an outbound call
    const callerId = form.querySelector("[data-outbound-call]");
    const kind = form.querySelector("#kind");
    const direction = form.querySelector("#direction");
    const showCallerId = () => {
      callerId.hidden = !(kind.value === "call" && direction.value === "outbound");
    };
    if (callerId && kind && direction) {
      kind.addEventListener("change", showCallerId);
      direction.addEventListener("change", showCallerId);
      showCallerId();
    }
  };
  const all = () => document.querySelectorAll("form[data-activity-form]").forEach(setUp);
  all();
  document.addEventListener("htmx:afterSettle", all);
})();
