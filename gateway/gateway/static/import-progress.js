// An import's progress panel (#job-progress) follows the job's events while it runs:
// each "progress" event moves the bar and the counts; "finished" swaps in the final
// panel (with the report) from data-refresh. EventSource reconnects by itself and the
// stream starts with the job's current state, so a dropped connection loses nothing.
(function () {
  "use strict";
  const panel = document.getElementById("job-progress");
  if (!panel || !panel.dataset.events || !window.EventSource) return;
  const numbers = new Intl.NumberFormat(document.documentElement.lang || "es-MX");
  const show = (id, value) => {
    const node = document.getElementById(id);
    if (node) node.textContent = numbers.format(value || 0);
  };
  const source = new EventSource(panel.dataset.events);
  source.addEventListener("progress", (event) => {
    const job = JSON.parse(event.data);
    const total = job.total_rows || 0;
    const percent = total ? Math.min(Math.floor((job.processed_rows || 0) * 100 / total), 100) : 0;
    panel.dataset.state = job.state || "running";
    document.getElementById("job-bar").value = percent;
    document.getElementById("job-percent").textContent = percent + "%";
    show("count-total", job.total_rows);
    show("count-processed", job.processed_rows);
    show("count-imported", job.imported_rows);
    show("count-rejected", job.rejected_rows);
  });
  source.addEventListener("finished", () => {
    source.close();
    htmx.ajax("GET", panel.dataset.refresh, {target: "#job-progress", swap: "outerHTML"});
  });
})();
